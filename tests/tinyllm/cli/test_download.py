"""tinyllm/cli/download.py: prints the cache folder; offline is a one-line error naming the
files to copy (the download itself is tested against a local server in test_hf_download.py)."""
import urllib.error
import urllib.request

import pytest

from tinyllm.cli import main
from tinyllm.hf_download import FILES


def test_a_complete_folder_is_printed_without_going_online(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "huggingface" / "gpt2"
    folder.mkdir(parents=True)
    for name in FILES:
        (folder / name).write_text("{}")
    monkeypatch.setattr(urllib.request, "urlopen", None)  # any download attempt would fail
    main(["download", "gpt2", "--cache", str(tmp_path)])
    assert capsys.readouterr().out.strip() == str(folder)


def test_offline_is_a_one_line_error_saying_what_to_copy_where(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit) as exit_info:
        main(["download", "gpt2-large", "--cache", str(tmp_path), "--no-progress"])
    message = str(exit_info.value)
    assert message.startswith("error: could not download") and "\n" not in message
    assert all(name in message for name in FILES)
    assert str(tmp_path / "huggingface" / "gpt2-large") in message


def test_unknown_models_are_refused():
    with pytest.raises(SystemExit, match="invalid choice: 'gpt3'"):
        main(["download", "gpt3"])
