"""A run folder: the files a training run writes, and the rules that keep them safe.

    out/ckpt.npz     the latest state (to resume)       out/log.jsonl    one record per evaluation
    out/best.npz     the best validation loss so far    out/steps.jsonl  one record per step
    out/.lock        held while a process trains here

Nothing is lost by accident: a fresh run refuses a folder that already holds a run unless told
`--resume` (continue it) or `--overwrite` (start over); a lock stops a second process from
training into the same folder (the kernel drops it when the holder dies, so a crash leaves no
stale lock); temporary files of a save that was killed are removed at the next start; and
every rewrite of a log goes through a temporary file and an atomic rename.
"""
import fcntl
import json
import os
import tempfile
from pathlib import Path

from tinyllm.npz import remove_orphaned_temps

RUN_FILES = ("ckpt.npz", "best.npz", "log.jsonl", "steps.jsonl")


class RunDirError(ValueError):
    """The run folder cannot be used as asked (it holds a run, or another process has it)."""


def claim(out_dir, resume=False, overwrite=False):
    """Make `out_dir` this process's: create it, take its lock and check that a fresh run does
    not replace an old one by accident. Returns the open lock file; keep it until the end."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the process ends
    except BlockingIOError:
        lock.close()
        raise RunDirError(f"another process is training into {out}/") from None
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not (resume or overwrite):
        lock.close()
        raise RunDirError(f"{out}/ already holds a run ({', '.join(existing)}): pass --resume "
                          "to continue it, --overwrite to replace it, or another --out-dir")
    if overwrite and not resume:
        for name in existing:
            (out / name).unlink()
    remove_orphaned_temps(out)
    return lock


def append_record(path, record):
    """Append one JSON record as a line (a crash can cut only this line short)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def trim_log(path, step):
    """Keep only the records from before `step`: a resumed run drops what the interrupted one
    logged after its checkpoint, so the log reads as one uninterrupted run's. Atomic: the kept
    lines go to a temporary file that then replaces the log."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines(keepends=True)
            if _logged_before(line, step)]
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write("".join(kept))
    os.replace(tmp, path)


def _logged_before(line, step):
    try:
        return json.loads(line)["iter"] < step
    except (ValueError, KeyError, TypeError):  # e.g. a line cut short by a crash
        return False


def read_records(path):
    """The JSON records of a log, skipping a torn or foreign line.

    >>> import tempfile, pathlib
    >>> log = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> _ = log.write_text('{"iter": 0, "val_loss": 4.2}\\n{"iter": 1, "val_lo')
    >>> read_records(log)
    [{'iter': 0, 'val_loss': 4.2}]
    """
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("iter"), int):
            records.append(record)
    return records
