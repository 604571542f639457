"""tinyllm/cli/plot.py: both pictures through the command, and its mistakes as one line."""
import sys

import pytest

from tests.tinyllm.test_plot import PNG_MAGIC, make_run
from tinyllm.cli import main

pytest.importorskip("matplotlib")


def test_plot_writes_loss_png_into_the_run_folder(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    main(["plot", str(run)])
    assert (run / "loss.png").read_bytes().startswith(PNG_MAGIC)
    assert f"wrote {run / 'loss.png'}" in capsys.readouterr().out


def test_plot_attention_writes_the_grid(tiny_checkpoint, tmp_path):
    checkpoint = tiny_checkpoint("model", n_layer=2)
    main(["plot", "--attention", "--checkpoint", str(checkpoint), "--prompt", "ab cd\nef"])
    assert (tmp_path / "attention.png").read_bytes().startswith(PNG_MAGIC)  # beside the file
    out = tmp_path / "pictures" / "attn.png"
    out.parent.mkdir()
    main(["plot", "--attention", "--checkpoint", str(checkpoint), "--prompt", "abc",
          "--out", str(out), "--max_tokens", "2"])
    assert out.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("argv, message", [
    (["plot"], "give a run folder"),
    (["plot", "--attention"], "needs --checkpoint"),
    (["plot", "--attention", "--checkpoint", "x", "--max-tokens", "0"], "at least 1"),
])
def test_missing_arguments_are_one_line_errors(argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code != 0 and message in str(exit_info.value)


def test_a_folder_without_logs_and_a_missing_matplotlib_are_one_line_errors(tmp_path,
                                                                             monkeypatch):
    with pytest.raises(SystemExit, match="^error: no loss values in"):
        main(["plot", str(tmp_path)])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(make_run(tmp_path / "run"))])
    assert str(exit_info.value) == "error: plotting needs matplotlib: pip install 'tinyllm[plot]'"
