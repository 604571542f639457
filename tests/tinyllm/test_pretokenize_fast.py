"""The compiled pre-tokeniser: exactly the regex's chunks, on any text, for both patterns."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.tokenizer.pretokenize import GPT2_PATTERN, GPT4_PATTERN, split_chunks
from tinyllm.tokenizer.pretokenize_fast import (
    LETTER, NUMBER, OTHER, SPACE, char_tables, chunk_ends, code_points, has_fast_split,
    split_chunks_fast)

# The characters each branch of the splitters looks at, mixed with any code point at all.
tricky = st.text(st.one_of(
    st.sampled_from(list("aZ9½ '\t\n\r\u00a0\u2028\u3000.!(é😀中\u0301sStTlLdDmMvVrReEſ")),
    st.characters(exclude_categories=("Cs",)),
))


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@given(text=tricky)
def test_same_chunks_as_the_regex(pattern, text):
    assert split_chunks_fast(text, pattern) == split_chunks(text, pattern)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
@given(text=st.lists(st.sampled_from(["'s", "'LL", "'ſ", "'", " ", "  ", "\r\n", "x", "1234",
                                      "?!", " (", "\t"]), max_size=12).map("".join))
def test_same_chunks_on_dense_edge_cases(pattern, text):
    assert split_chunks_fast(text, pattern) == split_chunks(text, pattern)


def test_class_table_agrees_with_unicode_on_samples():
    classes, folds = char_tables()
    assert classes.shape == folds.shape == (0x110000,)
    samples = {"a": LETTER, "Ж": LETTER, "中": LETTER, "7": NUMBER, "½": NUMBER, "Ⅻ": NUMBER,
               " ": SPACE, "\n": SPACE, "\u3000": SPACE, ".": OTHER, "😀": OTHER, "\u0301": OTHER}
    assert {c: int(classes[ord(c)]) for c in samples} == samples
    assert [chr(folds[ord(c)]) for c in "SsſTLVER"] == list("ssstlver")
    assert folds[ord("x")] == 0


def test_pattern_names_and_sources_both_select_the_fast_split():
    assert has_fast_split(GPT2_PATTERN) and has_fast_split("gpt4") and has_fast_split(GPT4_PATTERN)
    assert not has_fast_split(r"\w+|\W+")
    with pytest.raises(ValueError, match="no compiled splitter"):
        chunk_ends(np.array([97], dtype=np.uint32), r"\w+")


@given(st.text())
def test_code_points_round_trip(text):
    cps = code_points(text)
    assert cps.dtype == np.uint32 and cps.flags.writeable
    assert "".join(map(chr, cps.tolist())) == text


def test_lone_surrogate_is_refused_by_name_and_position():
    with pytest.raises(ValueError, match=r"U\+DC00 at position 2"):
        code_points("ab\udc00c")


def test_empty_text_has_no_chunks():
    assert chunk_ends(np.array([], dtype=np.uint32), "gpt2").tolist() == []
    assert split_chunks_fast("", "gpt4") == []
