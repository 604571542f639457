"""Versioned JSON files: what is written reads back, and every kind of bad file is refused."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.tokenizer.json_file import (TokenizerError, as_id, read_versioned,
                                         write_versioned)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


@given(st.lists(json_values, max_size=5), st.dictionaries(st.text(), json_values, max_size=3))
def test_round_trip(tmp_path_factory, items, extra):
    path = tmp_path_factory.mktemp("json") / "f.json"
    extra = {k: v for k, v in extra.items() if k not in ("format", "version", "items")}
    write_versioned(path, "demo", 3, extra | {"items": items}, list_field="items")
    assert read_versioned(path, "demo", 3) == {"format": "demo", "version": 3, **extra,
                                               "items": items}


def test_long_field_is_one_item_a_line(tmp_path):
    path = tmp_path / "f.json"
    write_versioned(path, "demo", 1, {"items": [[1, 2], "é"]}, list_field="items")
    assert path.read_text(encoding="utf-8").splitlines() == [
        '{"format": "demo", "version": 1,', ' "items": [', "  [1, 2],", '  "é"', "]}"]


def test_bad_files_are_refused(tmp_path):
    path = tmp_path / "f.json"
    write_versioned(path, "demo", 1, {"items": [1]}, list_field="items")
    with pytest.raises(ValueError, match="not a other file"):
        read_versioned(path, "other", 1)
    with pytest.raises(ValueError, match="demo file version 1, this code reads version 2"):
        read_versioned(path, "demo", 2)
    for content in (b'{"format": "demo", "vers', b"\xff\xfe", b"[1, 2]"):
        path.write_bytes(content)
        with pytest.raises(ValueError, match="not a demo file"):
            read_versioned(path, "demo", 1)


@pytest.mark.parametrize("content", [b"[" * 100_000, b"1" * 5000, b'{"format": "demo", "ve',
                                     b'{"format": "demo", "version": true}', b"\x80"])
def test_every_bad_file_raises_tokenizer_error(tmp_path, content):
    path = tmp_path / "f.json"
    path.write_bytes(content)
    with pytest.raises(TokenizerError, match="demo"):
        read_versioned(path, "demo", 1)


def test_ids_must_be_integers():
    assert as_id(7) == 7 and as_id(np.uint16(7)) == 7 and type(as_id(np.int64(7))) is int
    for bad in (7.0, True, "7", None, [7], float("inf")):
        with pytest.raises(TokenizerError, match="not an integer"):
            as_id(bad)

