"""clean: known answers for each step, and idempotence on random text and random markup."""
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data.clean import clean, clean_once

# Fragments that make the steps interact: tags, entities split across fragments, the Greek
# question mark (NFC turns it into ";"), a combining accent, controls, every kind of space.
_FRAGMENTS = ["<", ">", "/", "&", "amp", "lt", "gt", "#", "x3c", "60", ";", "\u037e", "b", "p",
              "br", "script", "<!--", "-->", "e", "\u0301", "\x00", "\x07", "\ufeff", " ",
              "\t", "\n", "\r", "\u00a0", "\u2028", "\f", "word", "é", "\ud800"]
markup = st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join)


@pytest.mark.parametrize("raw, expected", [
    ("<p>One</p><p>Two</p>", "One\n\nTwo"),
    ("a<br/>b", "a\nb"),
    ("<script>var x = '<p>';</script>kept<style>p {}</style>", "kept"),
    ("x<!-- a\ncomment -->y", "xy"),
    ("Fish &amp; chips &lt;3 &#233;&#x41;", "Fish & chips <3 éA"),
    ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),
    ("line one  \r\nline\ttwo\r", "line one\nline two"),
    ("e\u0301", "\u00e9"),  # NFC composes the accent
    ("a\x00b\x1bc\ufeff", "abc"),
    ("\n\n  para\n\n\n\n\npara  \n", "para\n\npara"),
    ("&amp;amp;amp;", "&"),  # three levels of escaping, three passes
    ("&am\x00p;", "&"),  # deleting the NUL creates an entity
    ("&hellip\u037e", "\u2026"),  # NFC turns U+037E into ";", which completes one
])
def test_known_answers(raw, expected):
    assert clean(raw) == expected


def test_one_pass_is_not_idempotent_but_clean_is():
    once = clean_once("&amp;lt;b&amp;gt;bold")
    assert once == "&lt;b&gt;bold" and clean_once(once) != once
    assert clean("&amp;lt;b&amp;gt;bold") == "bold"


@given(st.text())
def test_idempotent_on_any_text(text):
    cleaned = clean(text)
    assert clean(cleaned) == cleaned


@given(markup)
def test_idempotent_on_markup(text):
    cleaned = clean(text)
    assert clean(cleaned) == cleaned


@given(st.one_of(st.text(), markup))
def test_output_is_tidy(text):
    out = clean(text)
    assert out == out.strip() and "  " not in out and "\n\n\n" not in out
    assert all(line == line.strip(" ") for line in out.split("\n"))
    assert unicodedata.is_normalized("NFC", out)
    assert not any(unicodedata.category(c) in ("Cc", "Cs") and c != "\n" for c in out)
    out.encode("utf-8")  # no lone surrogates left: every cleaned text can be written
