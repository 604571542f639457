"""Checkpoints: everything needed to continue a run exactly, in one pickle-free file.

A checkpoint is a NumPy .npz archive of plain arrays: the model's state dict under `model.*`,
the optimizer's under `optim.*`, the tokenizer's own save file as bytes, and one JSON document
(configs, step, best validation loss, the random generators' states) stored as UTF-8 bytes.
Loading uses allow_pickle=False, so opening a checkpoint from elsewhere cannot run code.

Writes are atomic: the archive goes to a temporary file in the same directory, which is then
renamed over the old checkpoint, so an interrupted save leaves the previous checkpoint intact.
"""
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tinyllm.tokenizer import TOKENIZERS

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: missing, truncated, corrupt or of another version."""


def save_checkpoint(path, model_state, optim_state, meta, tokenizer):
    """Write one checkpoint atomically. `meta` must be JSON-serialisable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model.{k}": v for k, v in model_state.items()}
    arrays.update({f"optim.{k}": v for k, v in optim_state.items()})
    meta = dict(meta, format_version=FORMAT_VERSION, tokenizer_type=type(tokenizer).__name__)
    arrays["meta"] = _bytes_array(json.dumps(meta).encode("utf-8"))
    arrays["tokenizer"] = _bytes_array(tokenizer_bytes(tokenizer))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path):
    """(model_state, optim_state, meta, tokenizer) from a file written by save_checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint "
                              f"(truncated or corrupt?): {e}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {meta.get('format_version')}, "
                              f"this tinyllm reads {FORMAT_VERSION}")
    tokenizer = _tokenizer_from_bytes(meta["tokenizer_type"], arrays.pop("tokenizer").tobytes())
    model = {k[6:]: v for k, v in arrays.items() if k.startswith("model.")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim.")}
    return model, optim, meta, tokenizer


def _bytes_array(data):
    return np.frombuffer(data, dtype=np.uint8)


def tokenizer_bytes(tokenizer):
    """The tokenizer's own save format, through a temporary file (save takes a path). Two
    tokenizers are the same exactly when these bytes are."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(Path(tmp) / "tokenizer")
        return (Path(tmp) / "tokenizer").read_bytes()


def _tokenizer_from_bytes(kind, data):
    if kind not in TOKENIZERS:
        raise CheckpointError(f"unknown tokenizer type {kind!r} in checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenizer").write_bytes(data)
        return TOKENIZERS[kind].load(Path(tmp) / "tokenizer")


def remove_orphaned_temps(folder):
    """Delete the temporary files of saves that were killed before their rename. Called when a
    run takes its folder's lock, so no save of another process can be in progress there."""
    for tmp in Path(folder).glob("tmp*.tmp"):
        tmp.unlink(missing_ok=True)
