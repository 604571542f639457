"""Split patterns: known answers, nothing lost, and the same splits as tiktoken's patterns."""
import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.tokenizer.pretokenize import (
    GPT2_PATTERN, GPT4_PATTERN, resolve_pattern, split_chunks, split_special)

openai_public = pytest.importorskip("tiktoken_ext.openai_public")

# Text that exercises the patterns: letters, digits, apostrophes, mixed whitespace, emoji, CJK,
# combining marks, and any other code point (surrogates excluded: they are not text).
tricky = st.text(st.one_of(
    st.sampled_from(list("aZ9 '\t\n\r\u00a0\u3000.!é😀中\u0301sStTlLdDmMvVrReE")),
    st.characters(exclude_categories=("Cs",)),
))


def test_gpt2_known_split():
    assert split_chunks("Hello world's  end!!\n\n 42") == [
        "Hello", " world", "'s", " ", " end", "!!", "\n\n", " 42"]


def test_gpt4_known_split():
    text = "I'LL pay 12345 for (this)\r\n\r\n  ok"
    assert split_chunks(text, "gpt4") == [
        "I", "'LL", " pay", " ", "123", "45", " for", " (", "this", ")\r\n\r\n", " ", " ok"]


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@given(text=tricky)
def test_chunks_cover_the_text(pattern, text):
    chunks = split_chunks(text, pattern)
    assert "".join(chunks) == text
    assert all(chunks)


@given(text=tricky)
def test_gpt2_pattern_splits_like_tiktoken_r50k(text):
    # tiktoken rewrote GPT-2's pattern with possessive quantifiers and `\s++$`; same splits.
    assert split_chunks(text, "gpt2") == regex.findall(openai_public.r50k_pat_str, text)


def test_resolve_pattern():
    assert resolve_pattern("gpt2") == GPT2_PATTERN
    assert resolve_pattern("gpt4") == GPT4_PATTERN
    assert resolve_pattern(r"\S+|\s+") == r"\S+|\s+"
    with pytest.raises(ValueError, match="pattern"):
        resolve_pattern("")


def test_split_special_prefers_the_longest_special():
    parts = split_special("x<|a|>y<|a|>zw", ["<|a|>", "<|a|>z"])
    assert parts == ["x", "<|a|>", "y", "<|a|>z", "w"]


@given(st.lists(st.sampled_from(["ab", " ", "<|s|>", "<|t|>", "<", "|"]), max_size=12))
def test_split_special_alternates_text_and_specials(pieces):
    parts = split_special("".join(pieces), ["<|s|>", "<|t|>"])
    assert "".join(parts) == "".join(pieces)
    assert all(p in ("<|s|>", "<|t|>") for p in parts[1::2])
    assert not any("<|s|>" in p or "<|t|>" in p for p in parts[::2])
