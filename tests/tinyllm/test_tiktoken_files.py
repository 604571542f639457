"""tiktoken rank files and GPT-2's encoder.json + vocab.bpe, checked against tiktoken's readers."""
import base64
import doctest
import inspect
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm.tokenizer.tiktoken_files as tiktoken_files
from tinyllm.tokenizer import BPETokenizer, TokenizerError
from tinyllm.tokenizer.tiktoken_files import (
    bytes_to_unicode, merges_from_ranks, read_gpt2_files, read_rank_file, write_gpt2_files,
    write_rank_file)

tiktoken = pytest.importorskip("tiktoken")
tiktoken_load = pytest.importorskip("tiktoken.load")

# A small, varied training text that ships with the code: this module's own source.
_TOK = BPETokenizer.train(inspect.getsource(tiktoken_files) * 2, 600, pattern="gpt2",
                          special_tokens=["<|endoftext|>"])
# no unassigned code points (Cn): Unicode versions differ on them (see test_bpe.assigned_texts)
texts = st.text(st.characters(exclude_categories=("Cs", "Cn"))) | st.sampled_from(
    [inspect.getsource(BPETokenizer), "Ġ Ċ  the tokens\n\n  ", "rank ranks ranked"])


@pytest.fixture(autouse=True)
def no_tiktoken_cache(monkeypatch):
    # tiktoken caches files it reads by path; an empty cache dir turns that off.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")


def test_docstring_examples():
    assert doctest.testmod(tiktoken_files).failed == 0


def test_bytes_to_unicode_is_a_printable_bijection():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert (table[0], table[ord(" ")], table[ord("A")], table[0xAD]) == ("Ā", "Ġ", "A", "Ń")


def test_rank_file_round_trip_and_tiktoken_reads_it(tmp_path):
    path = tmp_path / "toy.tiktoken"
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab", 257: b"\n\n"}
    write_rank_file(path, vocab)
    ranks = {b: i for i, b in vocab.items()}
    assert read_rank_file(path) == ranks
    assert tiktoken_load.load_tiktoken_bpe(str(path)) == ranks
    assert path.read_text().splitlines()[256:] == ["YWI= 256", "Cgo= 257"]


def test_merges_recovered_from_ranks_are_the_trained_merges():
    ranks = {b: i for i, b in _TOK.vocab.items() if i < 256 + len(_TOK.merges)}
    assert merges_from_ranks(ranks) == (list(range(256)), _TOK.merges)


def test_bad_rank_files_raise(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_text("YWI= 256 extra\n")
    with pytest.raises(ValueError, match="bad.tiktoken:1"):
        read_rank_file(path)
    singles = {bytes([x]): x for x in range(256)}
    with pytest.raises(ValueError, match="single-byte"):
        merges_from_ranks({b"a": 0})
    with pytest.raises(ValueError, match="not a merge"):
        merges_from_ranks(singles | {b"abc": 256})  # no "ab" or "bc" to build it from


def _tiktoken_encoding(tmp_path, tok):
    path = tmp_path / "ours.tiktoken"
    tok.save_tiktoken(path)
    ranks = tiktoken_load.load_tiktoken_bpe(str(path))
    return path, tiktoken.Encoding("ours", pat_str=tok.pattern, mergeable_ranks=ranks,
                                   special_tokens=tok.special_tokens)


@given(texts)
def test_saved_rank_file_encodes_like_tiktoken(tmp_path_factory, text):
    path, enc = _tiktoken_encoding(tmp_path_factory.mktemp("tt"), _TOK)
    loaded = BPETokenizer.from_tiktoken(path, "gpt2", _TOK.special_tokens)
    expected = enc.encode(text, allowed_special="all")
    assert _TOK.encode(text, allowed_special="all") == expected
    assert loaded.encode(text, allowed_special="all") == expected
    assert enc.decode(expected) == text


def _write_gpt2_files(tok, folder):
    # GPT-2 numbers the single bytes by their printable stand-in (printable bytes first), then
    # the merges from 256 in order, then "<|endoftext|>"; vocab.bpe lists the merges.
    to_char = bytes_to_unicode()
    text_of = {i: "".join(to_char[x] for x in b) for i, b in tok.vocab.items()}
    byte_order = sorted(range(256), key=lambda x: ord(to_char[x]))
    encoder = {to_char[x]: rank for rank, x in enumerate(byte_order)}
    encoder |= {text_of[i]: i for i in tok.merges.values()} | tok.special_tokens
    lines = [f"{text_of[a]} {text_of[b]}" for a, b in tok.merges]
    (folder / "encoder.json").write_text(json.dumps(encoder))
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(lines) + "\n")
    return str(folder / "encoder.json"), str(folder / "vocab.bpe"), byte_order


@given(texts)
def test_gpt2_files_load_like_tiktoken_reads_them(tmp_path_factory, text):
    encoder_json, vocab_bpe, byte_order = _write_gpt2_files(_TOK, tmp_path_factory.mktemp("g"))
    gpt2 = BPETokenizer.from_gpt2(encoder_json, vocab_bpe)
    assert gpt2.special_tokens == {"<|endoftext|>": 256 + len(_TOK.merges)}
    ranks = tiktoken_load.data_gym_to_mergeable_bpe_ranks(vocab_bpe, encoder_json)
    enc = tiktoken.Encoding("gpt2-files", pat_str=gpt2.pattern, mergeable_ranks=ranks,
                            special_tokens=gpt2.special_tokens)
    ids = gpt2.encode(text, allowed_special="all")
    assert ids == enc.encode(text, allowed_special="all")
    # the same tokens as the trained tokenizer, with the single bytes renumbered
    renumber = {x: rank for rank, x in enumerate(byte_order)}
    assert ids == [renumber.get(i, i) for i in _TOK.encode(text, allowed_special="all")]
    assert gpt2.decode(ids) == text


def test_gpt2_files_with_unknown_tokens_raise(tmp_path):
    encoder_json, vocab_bpe, _ = _write_gpt2_files(_TOK, tmp_path)
    with open(vocab_bpe, "a") as f:
        f.write("zzzz qqqq\n")
    with pytest.raises(ValueError, match="no entry for token"):
        BPETokenizer.from_gpt2(encoder_json, vocab_bpe)


def test_written_gpt2_files_read_back_and_load_in_tiktoken(tmp_path):
    encoder_json, vocab_bpe = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    ordinary = {i: b for i, b in _TOK.vocab.items() if i not in _TOK.special_tokens.values()}
    write_gpt2_files(encoder_json, vocab_bpe, ordinary, _TOK.merges, _TOK.special_tokens)
    assert read_gpt2_files(encoder_json, vocab_bpe) == (
        _TOK.byte_ids, _TOK.merges, _TOK.special_tokens)
    (a, b), to_char = next(iter(_TOK.merges)), bytes_to_unicode()  # the first merge, as text
    first = " ".join("".join(to_char[x] for x in _TOK.vocab[i]) for i in (a, b))
    assert vocab_bpe.read_text().splitlines()[:2] == ["#version: 0.2", first]
    # our single bytes keep their byte order, not GPT-2's: tiktoken then takes them from the file
    ranks = tiktoken_load.data_gym_to_mergeable_bpe_ranks(
        str(vocab_bpe), str(encoder_json), clobber_one_byte_tokens=True)
    assert ranks == {b: i for i, b in ordinary.items()}


def test_writing_two_tokens_with_the_same_text_raises(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)}
    with pytest.raises(ValueError, match="same text"):
        write_gpt2_files(tmp_path / "e.json", tmp_path / "v.bpe", vocab, {}, {"a": 300})


def _rank_lines(extra):
    singles = [f"{base64.b64encode(bytes([x])).decode()} {x}" for x in range(256)]
    return "\n".join(singles + extra) + "\n"


@pytest.mark.parametrize("line", ["YWI= 1_0", "YWI= +256", "YWI= -256", "YWI= 256.0",
                                  "YWI= 99999999999", "YWI 256", "Y!I= 256", "YWI= 256 257"])
def test_rank_lines_must_be_base64_and_plain_digits(tmp_path, line):
    # int() would have read "1_0" as 10 and "+256" as 256
    path = tmp_path / "bad.tiktoken"
    path.write_text(_rank_lines([line]))
    with pytest.raises(TokenizerError, match="bad.tiktoken:257"):
        read_rank_file(path)


def test_a_token_listed_twice_or_too_long_is_refused(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_text(_rank_lines(["YWI= 256", "YWI= 257"]))
    with pytest.raises(TokenizerError, match="listed twice"):
        read_rank_file(path)
    long = bytes([97]) * (tiktoken_files.MAX_TOKEN_BYTES + 1)
    ranks = {bytes([x]): x for x in range(256)} | {long: 256}
    with pytest.raises(TokenizerError, match="bytes; at most"):
        merges_from_ranks(ranks)


def test_absurd_ranks_are_refused_without_building_a_table(tmp_path):
    path = tmp_path / "big.tiktoken"
    path.write_text(_rank_lines(["YWI= 9999999999"]))
    with pytest.raises(TokenizerError, match="out of range"):
        BPETokenizer.from_tiktoken(path, "gpt2")


@pytest.mark.parametrize("encoder", ['{"a": 1.5}', '{"a": "1"}', "[1, 2]", "[" * 100_000,
                                     '{"a": Infinity}', '{"a": true}'])
def test_gpt2_encoder_json_of_the_wrong_kind_is_refused(tmp_path, encoder):
    encoder_json, vocab_bpe, _ = _write_gpt2_files(_TOK, tmp_path)
    with open(encoder_json, "w") as f:
        f.write(encoder)
    with pytest.raises(TokenizerError):
        BPETokenizer.from_gpt2(encoder_json, vocab_bpe)


def test_gpt2_files_that_do_not_fit_together_are_refused(tmp_path):
    encoder_json, vocab_bpe, _ = _write_gpt2_files(_TOK, tmp_path)
    good = open(vocab_bpe, "rb").read()
    for bad in (good + b"\xff\xfe\n", good.replace(b"\n", b" x\n", 3)):
        open(vocab_bpe, "wb").write(bad)
        with pytest.raises(TokenizerError):
            BPETokenizer.from_gpt2(encoder_json, vocab_bpe)
    encoder = json.load(open(encoder_json))
    encoder["<|endoftext|>"] = 10**12  # a special id far beyond the vocabulary
    json.dump(encoder, open(encoder_json, "w"))
    open(vocab_bpe, "wb").write(good)
    with pytest.raises(TokenizerError, match="encoder.json.*out of range"):
        BPETokenizer.from_gpt2(encoder_json, vocab_bpe)

