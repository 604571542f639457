"""tinyllm/run_dir.py: a run folder is claimed once, never replaced by accident, its logs
trimmed atomically and read back past a torn line."""
import json

import pytest

from tinyllm.run_dir import RunDirError, append_record, claim, read_records, trim_log


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    claim(tmp_path).close()  # an empty folder is fine
    (tmp_path / "ckpt.npz").write_bytes(b"old run")
    with pytest.raises(RunDirError, match="already holds a run"):
        claim(tmp_path)
    claim(tmp_path, resume=True).close()
    assert (tmp_path / "ckpt.npz").exists()
    claim(tmp_path, overwrite=True).close()
    assert not (tmp_path / "ckpt.npz").exists()


def test_the_lock_admits_one_process_and_dies_with_it(tmp_path):
    held = claim(tmp_path)
    with pytest.raises(RunDirError, match="another process"):
        claim(tmp_path)
    held.close()  # as when the process ends, however it ends
    claim(tmp_path).close()


def test_orphaned_temporary_checkpoints_are_removed_at_the_start(tmp_path):
    (tmp_path / "tmpab12cd.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "notes.txt").write_text("kept")
    claim(tmp_path).close()
    assert [p.name for p in tmp_path.iterdir() if p.name != ".lock"] == ["notes.txt"]


def test_trim_keeps_records_before_the_step_and_drops_torn_lines(tmp_path):
    log = tmp_path / "log.jsonl"
    for i in range(5):
        append_record(log, {"iter": i, "loss": 1.0 / (i + 1)})
    with open(log, "a") as f:
        f.write('{"iter": 5, "lo')  # cut short by a crash
    trim_log(log, 3)
    assert [r["iter"] for r in read_records(log)] == [0, 1, 2]
    assert log.read_text().endswith("\n") and len(list(tmp_path.iterdir())) == 1  # no temp left


def test_read_records_skips_foreign_lines(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('[1, 2]\n{"iter": "3"}\nnot json\n' + json.dumps({"iter": 4}) + "\n")
    assert read_records(log) == [{"iter": 4}]
