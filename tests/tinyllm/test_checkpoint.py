"""tinyllm/checkpoint.py: round trip, clear errors for damaged files, atomic writes."""
import numpy as np
import pytest

from tinyllm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinyllm.tokenizer import CharTokenizer


def save(path, meta=None):
    tok = CharTokenizer.from_text("hello world")
    save_checkpoint(path, {"w": np.arange(6.0).reshape(2, 3)}, {"m.0": np.ones(2)},
                    meta or {"step": 3, "nested": {"a": [1, 2]}}, tok)


def test_round_trip(tmp_path):
    save(tmp_path / "c.npz")
    model, optim, meta, tok = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(model["w"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(optim["m.0"], np.ones(2))
    assert meta["step"] == 3 and meta["nested"] == {"a": [1, 2]}
    assert tok.decode(tok.encode("hello")) == "hello"


def test_truncated_file_is_rejected_clearly(tmp_path):
    path = tmp_path / "c.npz"
    save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_missing_and_foreign_files_are_rejected(tmp_path):
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "other.npz")


def test_failed_save_leaves_the_old_checkpoint_and_no_temp_files(tmp_path):
    path = tmp_path / "c.npz"
    save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save(path, meta={"not json": object()})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]
