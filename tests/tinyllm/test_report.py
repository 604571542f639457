"""Report: counts per stage in documents, bytes and tokens, the table, and the JSON file."""
import json

import pytest

from tinyllm.data.report import Report


def _report():
    """Two stages counted the way prepare counts them: bytes as they run, tokens later."""
    report = Report()
    clean = report.stage("clean")
    clean.record(100, 90)
    clean.record(20, None, reason="empty")
    quality = report.stage("quality")
    quality.record(90, None, reason="stop_words")
    report["clean"].record_tokens(40, 30, reason="ignored: counted by record")
    report["clean"].record_tokens(8, None)
    report["quality"].record_tokens(30, None, reason="stop_words")
    return report


def test_counts_and_removals():
    clean, quality = _report().to_dict()
    assert clean == {"name": "clean", "docs_in": 2, "docs_out": 1, "docs_removed": 1,
                     "bytes_in": 120, "bytes_out": 90, "bytes_removed": 30,
                     "tokens_in": 48, "tokens_out": 30, "tokens_removed": 18,
                     "removed_by": {"empty": 1}}
    assert quality["docs_out"] == 0 and quality["removed_by"] == {"stop_words": 1}
    assert (quality["tokens_in"], quality["tokens_out"], quality["tokens_removed"]) == (30, 0, 30)


def test_stages_are_found_by_name():
    report = _report()
    assert report["quality"] is report.stages[1]
    with pytest.raises(KeyError):
        report["near_dup"]


def test_table_has_a_row_per_stage_and_reason():
    lines = _report().table().split("\n")
    assert lines[0].split() == ["documents", "bytes", "tokens"]
    assert lines[1].split() == ["stage"] + ["in", "out", "removed"] * 3
    assert lines[2].split() == ["clean", "2", "1", "1", "120", "90", "25.0%", "48", "30", "37.5%"]
    assert lines[3].split() == ["empty", "1"]
    assert lines[4].split()[0] == "quality" and lines[5].split() == ["stop_words", "1"]
    assert lines[4].split()[-1] == "100.0%"
    assert max(len(line) for line in lines) <= 100


def test_write_json_round_trips(tmp_path):
    report = _report()
    report.write_json(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text()) == report.to_dict()
