"""Report: counts per stage, the table, and the JSON file."""
import doctest
import json

import tinyllm.data.report as report_module
from tinyllm.data.report import Report


def test_docstring_examples():
    assert doctest.testmod(report_module).failed == 0


def _report():
    report = Report()
    clean = report.stage("clean")
    clean.record(100, 90)
    clean.record(20, None, reason="empty")
    quality = report.stage("quality")
    quality.record(90, None, reason="stop_words")
    return report


def test_counts_and_removals():
    clean, quality = _report().to_dict()
    assert clean == {"name": "clean", "docs_in": 2, "docs_out": 1, "bytes_in": 120,
                     "bytes_out": 90, "docs_removed": 1, "bytes_removed": 30,
                     "removed_by": {"empty": 1}}
    assert quality["docs_out"] == 0 and quality["removed_by"] == {"stop_words": 1}


def test_table_has_a_row_per_stage_and_reason():
    lines = _report().table().split("\n")
    assert lines[0].split()[:3] == ["stage", "docs", "in"]
    assert lines[1].split() == ["clean", "2", "1", "1", "120", "90", "25.0%"]
    assert lines[2].split() == ["empty", "1"]
    assert lines[3].split()[0] == "quality" and lines[4].split() == ["stop_words", "1"]


def test_write_json_round_trips(tmp_path):
    report = _report()
    report.write_json(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text()) == report.to_dict()
