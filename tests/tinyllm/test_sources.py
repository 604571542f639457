"""sources: blocks of a text file, files of a folder, JSONL records, streaming, and the hash."""
import hashlib
import inspect
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data.sources import iter_documents, source_sha256

# a line of a block: some text with at least one visible character, no line break in it
_line = st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1).filter(str.strip)
_block = st.lists(_line, min_size=1, max_size=4).map("\n".join)


@given(st.lists(_block, max_size=6), st.sampled_from(["\n\n", "\n\n\n", "\n \t\n"]))
def test_blocks_round_trip(tmp_path_factory, blocks, blank):
    path = tmp_path_factory.mktemp("src") / "corpus.txt"
    path.write_text(blank.join(blocks) + "\n", encoding="utf-8")
    assert list(iter_documents(path)) == blocks


def test_documents_stream(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one\n\ntwo\n")
    docs = iter_documents(path)
    assert inspect.isgenerator(docs) and next(docs) == "one"


def test_invalid_utf8_becomes_replacement_character(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xe9 ok\n")
    assert list(iter_documents(path)) == ["caf\ufffd ok"]


def test_folder_reads_txt_files_recursively_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("third\n\nstill third")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "notes.md").write_text("ignored")
    # paths sort component by component: b/z.txt ("b" < "b.txt") comes before b.txt
    assert list(iter_documents(tmp_path)) == ["first", "third\n\nstill third", "second"]


def test_jsonl_reads_text_fields_and_skips_blank_lines(tmp_path):
    path = tmp_path / "docs.jsonl"
    records = [{"text": "a\n\nb", "id": 1}, {"text": ""}, {"text": "é"}]
    path.write_text("\n".join(json.dumps(r) for r in records[:2]) + "\n\n"
                    + json.dumps(records[2]) + "\n")
    assert list(iter_documents(path)) == ["a\n\nb", "", "é"]


@pytest.mark.parametrize("line", ['{"title": "x"}', '{"text": 3}', '["text"]'])
def test_jsonl_without_text_names_the_line(tmp_path, line):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")
    with pytest.raises(ValueError, match=r"docs.jsonl:2: .*'text'"):
        list(iter_documents(path))


def test_sha256_of_a_file_is_of_its_bytes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello\n")
    assert source_sha256(path) == hashlib.sha256(b"hello\n").hexdigest()


def test_sha256_of_a_folder_sees_names_contents_and_boundaries(tmp_path):
    (tmp_path / "a.txt").write_text("ab")
    (tmp_path / "b.txt").write_text("c")
    before = source_sha256(tmp_path)
    assert source_sha256(tmp_path) == before
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("bc")  # same concatenated bytes, other split
    assert source_sha256(tmp_path) != before
    (tmp_path / "b.txt").rename(tmp_path / "c.txt")
    changed = source_sha256(tmp_path)
    (tmp_path / "c.txt").rename(tmp_path / "b.txt")
    assert changed != source_sha256(tmp_path)


def test_a_line_that_is_not_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "torn\n')
    with pytest.raises(ValueError, match=r"docs.jsonl:2: not a JSON line"):
        list(iter_documents(path))
