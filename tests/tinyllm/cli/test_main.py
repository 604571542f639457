"""tinyllm/cli/__init__.py and common.py: the command list, unknown commands, one-line errors,
--debug, and the flag convention (dashes, underscore aliases)."""
import subprocess
import sys

import pytest

from tinyllm.cli import COMMANDS, main
from tinyllm.cli.common import Parser


def test_help_lists_every_command_on_stdout(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)


def test_an_unknown_command_says_so():
    with pytest.raises(SystemExit, match="unknown command 'frobnicate'") as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code != 0


def test_every_command_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0 and f"tinyllm {name}" in capsys.readouterr().out


def test_underscore_spellings_are_aliases_of_the_dashed_flags():
    parser = Parser()
    parser.add_argument("--max-iters", type=int)
    assert parser.parse_args(["--max_iters", "5"]).max_iters == 5
    assert parser.parse_args(["--max_iters=6"]).max_iters == 6
    with pytest.raises(SystemExit, match="error: unrecognized arguments: --min_iters"):
        parser.parse_args(["--min_iters", "5"])


def run(*args):
    return subprocess.run([sys.executable, "-m", "tinyllm.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_a_users_mistake_is_one_line_and_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "nothing")
    done = run("sample", "--checkpoint", missing)
    assert done.returncode == 1 and done.stderr.startswith("error: no checkpoint at")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    done = run("sample", "--checkpoint", missing, "--debug")
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_a_broken_pipe_is_not_a_traceback(tmp_checkpoint_file):
    command = f"{sys.executable} -m tinyllm.cli sample --checkpoint {tmp_checkpoint_file} " \
              "--max-new-tokens 2000 --top-k 3 | head -c 10"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "Broken" not in done.stderr


@pytest.fixture
def tmp_checkpoint_file(tiny_checkpoint):
    return tiny_checkpoint()
