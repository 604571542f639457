"""Token files: memmaps round-trip, the split falls on a document boundary, separators and
dtypes are chosen as documented, and bad ids or files are refused."""
import doctest
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm.data.token_files as token_files_module
from tinyllm.data.token_files import (TokenFileError, dataset_file, encoder, load_tokenizer,
                                      open_tokens, read_meta, separator_ids, token_dtype,
                                      write_meta, write_tokens)
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

VOCAB = 70_000  # above 2^16: exercises uint32 as well
docs_of_ids = st.lists(st.lists(st.integers(0, VOCAB - 2), max_size=20).map(tuple), max_size=12)


def test_docstring_examples():
    assert doctest.testmod(token_files_module).failed == 0


def _prepare(tmp, docs, vocab_size, val_fraction):
    eot = vocab_size - 1
    splits = write_tokens(docs, tmp, list, vocab_size, [eot], val_fraction)
    write_meta(tmp, {"dtype": token_dtype(vocab_size).name, "vocab_size": vocab_size})
    return splits, eot


@given(docs_of_ids, st.sampled_from([VOCAB, 300]), st.sampled_from([0.0, 0.1, 0.5]))
def test_memmaps_round_trip_and_split_on_a_boundary(tmp_path_factory, docs, vocab, fraction):
    docs = [tuple(i % (vocab - 1) for i in d) for d in docs]
    tmp = tmp_path_factory.mktemp("tokens")
    splits, eot = _prepare(tmp, docs, vocab, fraction)
    train, val = open_tokens(tmp, "train"), open_tokens(tmp, "val")
    assert train.dtype == val.dtype == token_dtype(vocab)
    expected = [t for d in docs for t in d + (eot,)]
    assert np.concatenate([train, val]).tolist() == expected
    assert (splits["train"]["tokens"], splits["val"]["tokens"]) == (len(train), len(val))
    assert splits["train"]["documents"] + splits["val"]["documents"] == len(docs)
    assert splits["val"]["documents"] == int(np.sum(val == eot))
    # the cut is at a document end, unless that would leave val empty: then inside the last
    boundaries = {0, *np.cumsum([len(d) + 1 for d in docs]).tolist()}
    assert len(train) in boundaries or splits["val"]["documents"] == 1
    if fraction == 0.0:
        assert len(val) == 0


def test_split_is_the_boundary_nearest_the_fraction(tmp_path):
    docs = [(1,) * 9] * 10  # ten documents of 10 tokens with the separator
    splits, _ = _prepare(tmp_path, docs, 300, 0.13)  # target 87: nearest boundary 90
    assert splits == {"train": {"tokens": 90, "documents": 9},
                      "val": {"tokens": 10, "documents": 1}}


def test_a_single_document_is_cut_inside(tmp_path):
    splits, _ = _prepare(tmp_path, [tuple(range(19))], 300, 0.1)
    assert splits == {"train": {"tokens": 18, "documents": 0},
                      "val": {"tokens": 2, "documents": 1}}


def test_chunked_writing_and_copying(tmp_path, monkeypatch):
    monkeypatch.setattr(token_files_module, "_FLUSH_TOKENS", 7)
    monkeypatch.setattr(token_files_module, "_COPY_TOKENS", 3)
    docs = [tuple(range(k, k + 5)) for k in range(50)]
    _prepare(tmp_path, docs, 300, 0.3)
    tokens = np.concatenate([open_tokens(tmp_path, "train"), open_tokens(tmp_path, "val")])
    assert tokens.tolist() == [t for d in docs for t in d + (299,)]


def test_empty_corpus_gives_empty_splits(tmp_path):
    assert _prepare(tmp_path, [], 300, 0.1)[0]["val"] == {"tokens": 0, "documents": 0}
    assert open_tokens(tmp_path, "train").shape == (0,)


def test_ids_outside_the_vocabulary_are_refused(tmp_path):
    with pytest.raises(ValueError, match="token id 300 is outside the vocabulary 0..299"):
        write_tokens([(1, 300)], tmp_path, list, 300, [299])
    with pytest.raises(ValueError, match="val_fraction"):
        write_tokens([(1,)], tmp_path, list, 300, [299], val_fraction=1.0)


def test_dtypes():
    assert token_dtype(256) == np.uint16 and token_dtype(1 << 16) == np.uint16
    assert token_dtype((1 << 16) + 1) == np.uint32
    with pytest.raises(ValueError):
        token_dtype(0)


def test_separator_prefers_eot_id_then_endoftext_then_a_blank_line():
    bpe = BPETokenizer.train("hello world " * 20, 260, special_tokens=["<|endoftext|>"])
    assert separator_ids(bpe) == [259]
    assert separator_ids(bpe, eot_id=7) == [7]
    char = CharTokenizer.from_text("ab\n")
    assert separator_ids(char) == char.encode("\n\n")
    with pytest.raises(ValueError, match="pass eot_id"):
        separator_ids(CharTokenizer.from_text("ab"))


def test_encoder_treats_special_token_text_as_text():
    bpe = BPETokenizer.train("hello world " * 20, 260, special_tokens=["<|endoftext|>"])
    ids = encoder(bpe)("a <|endoftext|> b")
    assert 259 not in ids and bpe.decode(ids) == "a <|endoftext|> b"
    char = CharTokenizer.from_text("ab")
    assert encoder(char)("ab") == [0, 1]


def test_meta_is_checked(tmp_path):
    write_meta(tmp_path, {"dtype": "uint16", "vocab_size": 300})
    assert read_meta(tmp_path)["format"] == "tinyllm-tokens"
    (tmp_path / "meta.json").write_text(json.dumps({"format": "other", "dtype": "uint16"}))
    with pytest.raises(TokenFileError, match="not a tinyllm-tokens"):
        read_meta(tmp_path)
    with pytest.raises(TokenFileError, match="no meta.json"):
        read_meta(tmp_path / "absent")


def _meta_with(tmp_path, **fields):
    """A dataset of four tokens (8 bytes) whose meta.json has `fields` changed."""
    _prepare(tmp_path, [(1, 2, 3)], 300, 0.0)
    meta = json.loads((tmp_path / "meta.json").read_text()) | fields
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path


def test_object_dtype_is_refused_not_memory_mapped(tmp_path):
    # issue 15: "dtype": "O" gave an object memmap (8 bytes: one pointer), and `tinyllm train`
    # a segmentation fault when it read a batch
    _meta_with(tmp_path, dtype="O")
    with pytest.raises(TokenFileError, match="dtype 'O'"):
        open_tokens(tmp_path, "train")
    with pytest.raises(TokenFileError):
        open_tokens(tmp_path, "train", dtype=object)


@pytest.mark.parametrize("fields", [
    {"dtype": "float64"}, {"dtype": "uint32"}, {"dtype": ["uint16"]}, {"vocab_size": 300.0},
    {"vocab_size": True}, {"vocab_size": -1}, {"vocab_size": 10**40}, {"vocab_size": 70_000},
    {"separator": [300]}, {"separator": [-1]}, {"separator": "\n"}, {"tokenizer": []},
    {"tokenizer": {"class": 3}}, {"version": 2}])
def test_meta_fields_of_the_wrong_kind_are_refused(tmp_path, fields):
    with pytest.raises(TokenFileError):
        read_meta(_meta_with(tmp_path, **fields))


@pytest.mark.parametrize("content", [b"\xff", b"[" * 100_000, b"1" * 5000, b"[1]", b"{"])
def test_meta_that_is_not_a_json_object_is_refused(tmp_path, content):
    (tmp_path / "meta.json").write_bytes(content)
    with pytest.raises(TokenFileError):
        read_meta(tmp_path)


@pytest.mark.parametrize("name", ["../tokenizer.json", "/etc/passwd", ".", "", "a/../../x"])
def test_a_tokenizer_path_outside_the_folder_is_refused(tmp_path, name):
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(TokenFileError):
        read_meta(_meta_with(data, tokenizer={"class": "CharTokenizer", "file": name}))


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere.json").write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "tokenizer.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(TokenFileError, match="outside the folder"):
        dataset_file(data, "tokenizer.json")
    (data / "inside.json").write_text("{}")
    assert dataset_file(data, "./inside.json") == (data / "inside.json").resolve()


def test_token_files_of_a_wrong_size_or_name_are_refused(tmp_path):
    _prepare(tmp_path, [(1, 2)], 300, 0.0)
    with open(tmp_path / "train.bin", "ab") as f:
        f.write(b"\0")  # 7 bytes: not a whole number of uint16 ids
    with pytest.raises(TokenFileError, match="whole number"):
        open_tokens(tmp_path, "train")
    with pytest.raises(TokenFileError):
        open_tokens(tmp_path, "../train")


def test_load_tokenizer_follows_no_path_out_of_the_dataset(tmp_path):
    # issue 15: meta.json's tokenizer path was opened wherever it pointed
    CharTokenizer.from_text("abc").save(tmp_path / "outside.json")
    data = tmp_path / "data"
    data.mkdir()
    _meta_with(data, tokenizer={"class": "CharTokenizer", "file": "../outside.json"},
               vocab_size=3)
    with pytest.raises(TokenFileError, match="outside the folder"):
        load_tokenizer(data)
    CharTokenizer.from_text("abc").save(data / "tokenizer.json")
    _meta_with(data, tokenizer={"class": "CharTokenizer", "file": "tokenizer.json"},
               vocab_size=3)
    assert load_tokenizer(data).chars == ["a", "b", "c"]
    for info, vocab_size in [({"class": "Pickled", "file": "tokenizer.json"}, 3),
                             ({"class": "CharTokenizer", "file": None}, 3),
                             ({"class": "CharTokenizer", "file": "tokenizer.json"}, 4)]:
        _meta_with(data, tokenizer=info, vocab_size=vocab_size)
        with pytest.raises(TokenFileError):
            load_tokenizer(data)

