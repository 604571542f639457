"""CharTokenizer: known answers, round trips over any text, errors that name the culprit."""
import doctest
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm.tokenizer.char as char_module
from tinyllm.tokenizer import CharTokenizer, TokenizerError


def test_docstring_examples():
    assert doctest.testmod(char_module).failed == 0


def test_vocabulary_is_sorted_unique_characters():
    tok = CharTokenizer.from_text("First Citizen:\n")
    assert tok.chars == ["\n", " ", ":", "C", "F", "e", "i", "n", "r", "s", "t", "z"]
    assert tok.vocab_size == 12
    assert tok.encode("Fir") == [4, 6, 8]


@given(st.text())
def test_round_trip_any_text(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


@given(st.text(min_size=1), st.text(min_size=1))
def test_ids_do_not_depend_on_character_order(a, b):
    assert CharTokenizer.from_text(a + b).chars == CharTokenizer.from_text(b + a).chars


def test_unknown_character_names_it_and_its_position():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) at position 3"):
        tok.encode("abcz")


def test_decode_rejects_ids_outside_the_vocabulary():
    tok = CharTokenizer.from_text("ab")
    with pytest.raises(ValueError, match="token id 2"):
        tok.decode([0, 2])
    with pytest.raises(ValueError, match="token id -1"):
        tok.decode([-1])


def test_constructor_rejects_bad_vocabularies():
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="single character"):
        CharTokenizer(["ab"])


@given(st.text(min_size=1))
def test_save_load_round_trip(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("char") / "vocab.json"
    tok = CharTokenizer.from_text(text)
    tok.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded.chars == tok.chars
    assert loaded.encode(text) == tok.encode(text)


def test_load_rejects_wrong_version_and_corrupt_files(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"format": "tinyllm-char", "version": 99, "chars": ["a"]}))
    with pytest.raises(ValueError, match="version 99"):
        CharTokenizer.load(path)
    path.write_text('{"format": "tinyllm-char", "version": 1, "chars": ["a", ')
    with pytest.raises(ValueError, match="not a tinyllm-char file"):
        CharTokenizer.load(path)
    path.write_text(json.dumps({"format": "tinyllm-char", "version": 1, "chars": ["a", "a"]}))
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer.load(path)
    path.write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(ValueError, match="not a tinyllm-char file"):
        CharTokenizer.load(path)


@pytest.mark.parametrize("chars", [["a", 1], ["a", None], ["a", ["b"]], ["\ud800"], ["a", ""],
                                   "ab", {"a": 0}, None])
def test_load_refuses_entries_that_are_not_characters(tmp_path, chars):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"format": "tinyllm-char", "version": 1, "chars": chars}))
    with pytest.raises(TokenizerError, match=str(path)):
        CharTokenizer.load(path)


@pytest.mark.parametrize("content", [b"[" * 100_000, b'{"format": "tinyllm-char", "version": '
                                     + b"1" * 5000 + b"}", b"\xff\xfe", b""])
def test_load_refuses_json_that_python_cannot_parse(tmp_path, content):
    # nesting too deep for the parser raised RecursionError, 5000 digits a plain ValueError
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(TokenizerError, match="not a tinyllm-char file"):
        CharTokenizer.load(path)


def test_a_vocabulary_that_could_not_be_saved_cannot_be_made():
    with pytest.raises(TokenizerError, match="lone surrogates"):
        CharTokenizer(["a", "\udc80"])

