"""tinyllm/finetune/data.py: JSON and JSON Lines read alike, every malformed input is a
DataError naming file and record, downloads are verified, and the split is fixed."""
import hashlib
import io
import json
import os
import urllib.error

import pytest

from tinyllm.data import download
from tinyllm.finetune import data
from tinyllm.finetune.data import DataError, Example, Preference

from .helpers import EXAMPLES, needs_instructions, needs_preferences

RECORDS = [{"instruction": "Say hi.", "input": "", "output": "Hi."},
           {"instruction": "Spell it.", "input": "cat", "output": "c-a-t", "extra": 1}]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_and_json_lines_give_the_same_examples(tmp_path):
    as_json = write(tmp_path, "d.json", json.dumps(RECORDS, indent=1))
    lines = "\n".join(json.dumps(r) for r in RECORDS)
    as_jsonl = write(tmp_path, "d.txt", "\n" + lines.replace("\n", "\n\n") + "\n")
    want = [Example("Say hi.", "", "Hi."), Example("Spell it.", "cat", "c-a-t")]
    assert data.load_records(as_json, Example) == data.load_records(as_jsonl, Example) == want


def test_input_may_be_absent_but_preferences_need_both_answers(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"instruction": "a", "chosen": "b", "rejected": "c"}\n')
    assert data.load_records(path, Preference) == [Preference("a", "", "b", "c")]
    with pytest.raises(DataError, match="line 1: field 'chosen' is missing"):
        data.load_records(write(tmp_path, "e.jsonl", json.dumps(RECORDS[0])), Preference)


@pytest.mark.parametrize("text, message", [
    ("[1, 2", "not valid JSON"),
    ('{"instruction": "a", "output": "b"}\n{"instruction": ', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # nesting deep enough to recurse out
    ("[]", "no records"),
    ('[{"instruction": "a", "output": "b"}, ["a", "b"]]', "record 1: expected a JSON object"),
    ('{"instruction": "a", "output": "b"}\n\n{"instruction": "a"}', "line 3: field 'output'"),
    ('[{"instruction": "a", "output": 5}]', "record 0: field 'output' is a int, not a string"),
    ('[{"instruction": "a", "input": null, "output": "b"}]', "field 'input' is a NoneType"),
    ('[{"instruction": "  ", "output": "b"}]', "field 'instruction' is empty"),
])
def test_malformed_files_name_the_file_and_the_record(tmp_path, text, message):
    path = write(tmp_path, "bad.json", text)
    with pytest.raises(DataError, match=message) as error:
        data.load_records(path, Example)
    assert str(path) in str(error.value)


def test_sizes_are_checked_before_anything_is_kept(tmp_path, monkeypatch):
    path = write(tmp_path, "d.json", json.dumps(RECORDS))
    monkeypatch.setattr(data, "MAX_FIELD_CHARS", 8)
    with pytest.raises(DataError, match="record 1: field 'instruction' is longer than 8"):
        data.load_records(path, Example)
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 100)
    with pytest.raises(DataError, match="bytes is more than the 100 allowed"):
        data.load_records(path, Example)


def test_a_file_that_is_not_utf8_is_a_data_error(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"instruction": "caf\xe9", "output": "x"}]'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        data.load_records(path, Example)


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """A RemoteFile whose 'server' returns BODY, with an empty cache and no local copy."""
    body = json.dumps(RECORDS).encode()
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MY_DATA", raising=False)
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(body))
    return data.RemoteFile("mine.json", "https://example.org/mine.json",
                           hashlib.sha256(body).hexdigest(), "MY_DATA")


def test_local_copies_win_then_the_verified_download(tmp_path, remote, monkeypatch):
    local = write(tmp_path, "local.json", "[]")
    assert data.data_path(remote, str(local)) == local
    monkeypatch.setenv("MY_DATA", str(local))
    assert data.data_path(remote) == local
    monkeypatch.delenv("MY_DATA")
    cached = data.data_path(remote)
    assert cached == tmp_path / "cache" / "mine.json"
    assert data.load_records(cached, Example)[1].input == "cat"


def test_an_altered_download_or_no_network_is_explained(tmp_path, remote, monkeypatch):
    altered = data.RemoteFile(remote.filename, remote.url, "0" * 64, remote.env)
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.data_path(altered)

    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="set MY_DATA=PATH"):
        data.data_path(remote)


def test_the_default_files_are_the_books():
    assert data.INSTRUCTIONS.url.endswith("ch07/01_main-chapter-code/instruction-data.json")
    assert data.INSTRUCTIONS.env == "TINYLLM_INSTRUCTION_DATA"
    assert data.PREFERENCES.url.endswith(
        "ch07/04_preference-tuning-with-dpo/instruction-data-with-preference.json")
    assert data.PREFERENCES.env == "TINYLLM_PREFERENCE_DATA"


@pytest.mark.parametrize("n, sizes", [(1100, (935, 55, 110)), (20, (17, 1, 2)), (3, (1, 1, 1))])
def test_the_split_is_85_5_10_disjoint_and_fixed(n, sizes):
    s = data.split(list(range(n)))
    assert (len(s.train), len(s.val), len(s.test)) == sizes
    assert sorted(s.train + s.val + s.test) == list(range(n))
    assert data.split(list(range(n))) == s
    assert data.split([str(i) for i in range(n)]).test == [str(i) for i in s.test]
    assert s.train != sorted(s.train) or n < 10  # shuffled, not the file's order


def test_too_few_records_cannot_be_split():
    with pytest.raises(DataError, match="need >= 3"):
        data.split(EXAMPLES[:2])


@needs_instructions
def test_the_shared_instruction_file():
    examples = data.load_instructions()
    assert len(examples) == 1100 and sum(bool(e.input) for e in examples) == 325
    assert download.sha256_of(os.environ["TINYLLM_INSTRUCTION_DATA"]) == data.INSTRUCTIONS.sha256


@needs_instructions
@needs_preferences
def test_dpo_holds_out_the_instructions_sft_held_out():
    instructions, preferences = data.load_instructions(), data.load_preferences()
    assert len(preferences) == 1100
    assert download.sha256_of(os.environ["TINYLLM_PREFERENCE_DATA"]) == data.PREFERENCES.sha256
    for part in ("train", "val", "test"):
        sft, dpo = getattr(data.split(instructions), part), getattr(data.split(preferences), part)
        assert [e.instruction for e in sft] == [p.instruction for p in dpo]
