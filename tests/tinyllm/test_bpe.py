"""BPETokenizer end to end: round trips, special tokens, files, errors, and tiktoken's ids."""
import doctest
import inspect
import json
import os
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm.tokenizer.bpe as bpe_module
from tinyllm.tokenizer import BPETokenizer, TokenizerError, load_any
from tinyllm.tokenizer.bpe_encode import encode_chunk_reference
from tinyllm.tokenizer.pretokenize import split_chunks

tiktoken = pytest.importorskip("tiktoken")

SPECIALS = ["<|endoftext|>", "<|pad|>"]
# Trained on this library's own source: English prose, code, and some non-ASCII.
_SOURCE = inspect.getsource(bpe_module)
_TOKS = {p: BPETokenizer.train(_SOURCE, 700, pattern=p, special_tokens=SPECIALS)
         for p in ("gpt2", "gpt4", r"\w+|[^\w\s]")}  # the last one drops whitespace

# Any code point but lone surrogates, plus the awkward cases named: emoji (several code points
# with a zero-width joiner), CJK, combining marks, whitespace runs, lone "\r".
awkward = st.sampled_from(
    ["👩‍👩‍👧", "中文字", "e\u0301", "   \t\n\n  ", "\r", "'s", "'LL", "123456"])
texts = st.lists(st.characters(exclude_categories=("Cs",)).map(str) | awkward).map("".join)
# As texts, without code points unassigned in Python's Unicode tables (14.0 in 3.11): libraries
# built on other Unicode versions may class them differently. (regex 2026.11 takes U+3D000 for
# a letter, tiktoken for neither letter nor number: "\U0003d000's" splits before or after "'".)
assigned_texts = st.lists(
    st.characters(exclude_categories=("Cs", "Cn")).map(str) | awkward).map("".join)


def _shakespeare():
    path = os.environ.get("TINYLLM_DATA")
    if not path or not os.path.exists(path):
        pytest.skip("set TINYLLM_DATA to the Tiny Shakespeare text file")
    with open(path, encoding="utf-8") as f:
        return f.read()


def _as_tiktoken(tok, tmp_path):
    path = tmp_path / "ours.tiktoken"
    tok.save_tiktoken(path)
    ranks = {bytes_: rank for rank, bytes_ in tok.vocab.items() if rank < 256 + len(tok.merges)}
    return tiktoken.Encoding("ours", pat_str=tok.pattern, mergeable_ranks=ranks,
                             special_tokens=tok.special_tokens)


def test_docstring_examples():
    assert doctest.testmod(bpe_module).failed == 0


def test_hand_checked_corpus():
    # Chunks "ab", " ab", " abc". (a,b) occurs 3 times -> 256. Then the chunks read [256],
    # [32 256], [32 256 c]: (32,256) twice -> 257. Then only (257,c) is left, once -> 258.
    tok = BPETokenizer.train("ab ab abc", 259)
    assert tok.merges == {(97, 98): 256, (32, 256): 257, (257, 99): 258}
    assert tok.encode("ab abc ab") == [256, 258, 257]
    assert [tok.token_bytes(i) for i in (256, 257, 258)] == [b"ab", b" ab", b" abc"]


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@given(text=texts)
def test_decode_inverts_encode(pattern, text):
    tok = _TOKS[pattern]
    ids = tok.encode_ordinary(text)
    assert tok.decode(ids) == text
    assert tok.decode_bytes(ids) == text.encode("utf-8")


@pytest.mark.parametrize("pattern", list(_TOKS))
@given(text=texts)
def test_fast_encoder_equals_reference(pattern, text):
    # gpt2/gpt4 split with the compiled splitter, the custom pattern with the regex
    tok = _TOKS[pattern]
    expected = [i for chunk in split_chunks(text, tok.pattern)
                for i in encode_chunk_reference(chunk.encode(), tok.merges, tok.byte_ids)]
    assert tok.encode_ordinary(text) == expected


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@given(text=assigned_texts)
def test_ids_equal_tiktoken(tmp_path_factory, pattern, text):
    tok = _TOKS[pattern]
    enc = _as_tiktoken(tok, tmp_path_factory.mktemp("tt"))
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")


@given(st.lists(texts | st.sampled_from(SPECIALS), max_size=6))
def test_special_tokens_are_never_split_and_never_made_from_text(pieces):
    tok = _TOKS["gpt2"]
    text = "".join(pieces)
    special_ids = set(tok.special_tokens.values())
    ordinary = tok.encode_ordinary(text)
    assert not special_ids & set(ordinary)
    assert tok.decode(ordinary) == text
    ids = tok.encode(text, allowed_special="all")
    assert [i for i in ids if i in special_ids] == [
        tok.special_tokens[p] for p in _specials_in(text)]
    assert tok.decode(ids) == text


def _specials_in(text):
    # the special-token strings in `text`, left to right, found by the plainest possible scan
    found, i = [], 0
    while i < len(text):
        match = next((s for s in SPECIALS if text.startswith(s, i)), None)
        found += [match] if match else []
        i += len(match) if match else 1
    return found


def test_allowed_special_modes():
    tok = _TOKS["gpt2"]
    eot, pad = tok.special_tokens["<|endoftext|>"], tok.special_tokens["<|pad|>"]
    text = "a<|endoftext|>b<|pad|>"
    with pytest.raises(ValueError, match=r"'<\|endoftext\|>' at position 1"):
        tok.encode(text)
    assert tok.encode(text, allowed_special="none") == tok.encode_ordinary(text)
    assert tok.encode(text, allowed_special="all") == [97, eot, 98, pad]
    with pytest.raises(ValueError, match="pad"):
        tok.encode(text, allowed_special={"<|endoftext|>"})
    assert tok.encode("<|pad|>x", allowed_special={"<|pad|>"}) == [pad, 120]
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        tok.encode("x", allowed_special="some")


def test_special_token_text_is_not_learned_from():
    tok = BPETokenizer.train("<|endoftext|>" * 50 + "hello", 300, special_tokens=["<|endoftext|>"])
    assert not any(b"<|" in tok.token_bytes(i) or b"|>" in tok.token_bytes(i)
                   for i in tok.merges.values())
    assert tok.special_tokens == {"<|endoftext|>": 256 + len(tok.merges)}


def test_decode_replaces_invalid_utf8_and_rejects_unknown_ids():
    tok = _TOKS["gpt2"]
    assert tok.decode([0xE2, 0x82]) == "\ufffd"  # a cut-off "€" is replaced, not an error
    assert tok.decode(np.array([104, 105])) == "hi"
    for bad in (-1, tok.vocab_size, 10**9):
        with pytest.raises(ValueError, match=f"token id {bad} "):
            tok.decode([104, bad])


def test_lone_surrogate_is_a_clear_error():
    tok = _TOKS["gpt2"]
    with pytest.raises(ValueError, match=r"U\+D800 at position 3"):
        tok.encode("abc\ud800")
    with pytest.raises(ValueError, match=r"U\+DFFF at position 0"):
        BPETokenizer.train("\udfff abc", 300)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", r"\w+|\W"])
def test_save_load_round_trip(tmp_path, pattern):
    tok = BPETokenizer.train(_SOURCE, 400, pattern=pattern, special_tokens=SPECIALS)
    tok.save(tmp_path / "tok.json")
    loaded = BPETokenizer.load(tmp_path / "tok.json")
    assert (loaded.merges, loaded.pattern, loaded.special_tokens, loaded.byte_ids) == (
        tok.merges, tok.pattern, tok.special_tokens, tok.byte_ids)
    assert loaded.encode_ordinary(_SOURCE) == tok.encode_ordinary(_SOURCE)


def test_load_rejects_corrupt_and_wrong_version_files(tmp_path):
    path = tmp_path / "tok.json"
    _TOKS["gpt2"].save(path)
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # truncated
    with pytest.raises(ValueError, match="not a tinyllm-bpe file"):
        BPETokenizer.load(path)
    data = json.loads(good)
    for change, message in [({"version": 2}, "version 2"),
                            ({"merges": [[97, 98, 256], [999, 98, 257]]}, "corrupt"),
                            ({"byte_ids": [0] * 256}, "corrupt"),
                            ({"special_tokens": {"<|x|>": 98}}, "corrupt"),
                            ({"format": "something"}, "not a tinyllm-bpe")]:
        path.write_text(json.dumps(data | change))
        with pytest.raises(ValueError, match=message):
            BPETokenizer.load(path)


def test_verbose_training_prints_each_merge(capsys):
    BPETokenizer.train("aaabdaaabac", 259, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "merge 1/3: b'a' + b'a' -> 256 b'aa' (4 occurrences)"
    assert len(lines) == 3


def test_vocab_size_too_small_raises():
    with pytest.raises(ValueError, match="vocab_size 257"):
        BPETokenizer.train("abc", 257, special_tokens=["<|a|>", "<|b|>"])


@pytest.fixture(scope="module")
def shakespeare_tok():
    return BPETokenizer.train(_shakespeare(), 1024, special_tokens=["<|endoftext|>"])


def test_shakespeare_matches_tiktoken_and_reference_trainer(shakespeare_tok, tmp_path):
    text = _shakespeare()
    ids = shakespeare_tok.encode(text)
    assert ids == _as_tiktoken(shakespeare_tok, tmp_path).encode(text)
    assert shakespeare_tok.decode(ids) == text
    # 768 merges already pack this English into more than two bytes per token
    assert len(text.encode()) / len(ids) > 2.0
    head = text[:20000]
    fast = BPETokenizer.train(head, 300)
    assert fast.merges == BPETokenizer.train(head, 300, reference=True).merges


def test_shakespeare_first_merges_are_common_english(shakespeare_tok):
    first = [shakespeare_tok.token_bytes(i) for i in range(256, 262)]
    assert b" t" in first and b"he" in first  # the most frequent pairs of English text


def _saved_with(tmp_path, **changes):
    """A small saved BPE file with some JSON fields replaced, as a hostile file would have."""
    path = tmp_path / "tok.json"
    BPETokenizer({(104, 105): 256}, special_tokens={"<|eot|>": 257}).save(path)
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    return path


def _refused_quickly_and_small(path, max_bytes=20 * 2**20):
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(TokenizerError) as info:
        BPETokenizer.load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - start < 1.0 and peak < max_bytes
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("changes", [
    {"special_tokens": {"<|eot|>": 10**12}}, {"merges": [[104, 105, 10**12]]},
    {"byte_ids": [10**12 + x for x in range(256)]}, {"merges": [[104, 105, 2**63]]}])
def test_absurd_ids_are_refused_before_building_an_id_table(tmp_path, changes):
    # issue 15: a special id of 10**12 made a list of 10**12 entries
    assert "out of range" in _refused_quickly_and_small(_saved_with(tmp_path, **changes))


def test_ids_may_leave_a_few_gaps_as_published_vocabularies_do():
    tok = BPETokenizer({}, special_tokens={"<|a|>": 256 + 18})  # o200k_base has gaps of 18
    assert tok.vocab_size == 256 + 19
    with pytest.raises(TokenizerError, match="out of range"):
        BPETokenizer({}, special_tokens={"<|a|>": 257 + bpe_module.MAX_ID_GAP})


@pytest.mark.parametrize("changes", [
    {"merges": [[104.0, 105, 256]]}, {"merges": [[104, 105, 256.5]]},
    {"merges": [["104", 105, 256]]}, {"merges": [[True, 105, 256]]},
    {"special_tokens": {"<|eot|>": 257.0}}, {"byte_ids": [float(x) for x in range(256)]},
    {"byte_ids": "".join(chr(65 + x % 26) for x in range(256))}, {"merges": [[[104], 105, 256]]},
    {"merges": [[104, 105]]}, {"merges": {"104": 105}}, {"special_tokens": [["<|eot|>", 257]]},
    {"merges": [[104, 105, 256], [104, 105, 257]]}, {"special_tokens": {"\ud800": 257}},
    {"pattern": "(unclosed"}, {"pattern": 5}, {"pattern": ""}, {"pattern": "(" * 10_000},
    {"pattern": "\ud800+"}])
def test_ids_and_fields_of_the_wrong_type_are_errors_not_converted(tmp_path, changes):
    _refused_quickly_and_small(_saved_with(tmp_path, **changes))


def test_infinite_and_huge_numbers_in_the_file_are_refused(tmp_path):
    path = _saved_with(tmp_path)
    good = path.read_text()
    for bad in ("Infinity", "NaN", "1" * 5000, "1e400"):
        path.write_text(good.replace("[104, 105, 256]", f"[104, 105, {bad}]"))
        _refused_quickly_and_small(path)  # Infinity leaked OverflowError from int()


def test_merges_that_double_a_token_forty_times_are_refused(tmp_path):
    # 40 lines would make a token of 2**40 bytes: each merge joins the previous token to itself
    merges = [[97, 97, 256]] + [[255 + k, 255 + k, 256 + k] for k in range(1, 40)]
    path = _saved_with(tmp_path, merges=merges)
    message = _refused_quickly_and_small(path, max_bytes=2 * bpe_module.MAX_VOCAB_BYTES)
    assert "bytes add up" in message


def test_load_any_names_the_real_problem_of_a_corrupt_file(tmp_path):
    path = _saved_with(tmp_path, merges=[[104, 105, 256.5]])
    with pytest.raises(TokenizerError, match="corrupt tinyllm-bpe file.*256.5"):
        load_any(path)
    path.write_text('{"format": "something else"}')
    with pytest.raises(TokenizerError, match="not a saved CharTokenizer or BPETokenizer"):
        load_any(path)
    assert load_any(_saved_with(tmp_path)).merges == {(104, 105): 256}

