"""Cleaning one document: markup out, one Unicode form, no control characters, tidy whitespace.

Text scraped or exported from the web carries noise a language model should not spend capacity
on: HTML tags, entities such as `&amp;`, the same letter written two ways (an "é" as one code
point or as "e" plus a combining accent), invisible control characters, and whitespace in every
flavour (tabs, no-break spaces, Windows line ends, runs of blank lines). `clean` applies, in order:

1. line ends: CR LF, lone CR, form feed, vertical tab, NEL, U+2028 and U+2029 become "\\n";
2. control characters: Unicode category Cc (except tab and newline), lone surrogates (Cs, which
   cannot be written as UTF-8) and the byte-order mark U+FEFF are deleted;
3. HTML: comments and `<script>`/`<style>` blocks are deleted, block-level tags (`<p>`, `<br>`,
   `<div>`, `<li>`, ...) become a newline, other tags vanish, then entities are decoded;
4. Unicode NFC (canonical composition), so equal-looking text has equal code points;
5. whitespace: any run of horizontal space becomes one " ", lines are stripped, at most one
   blank line in a row, and the document is stripped.

Why the loop in `clean`: each step can create work for another. Decoding `&amp;lt;b&amp;gt;`
yields `&lt;b&gt;`, a second pass yields `<b>`, a tag; deleting the NUL in `&am\\x00p;` creates
an entity; NFC turns U+037E (Greek question mark) into ";", which can finish an entity. So one
pass is not idempotent. `clean` repeats the pass until the text stops changing, which makes
`clean(clean(x)) == clean(x)` hold by construction (a test checks it on random markup).

Follows: the normalisation steps of CCNet (Wenzek et al. 2019) and the HTML-to-text stage of
C4 (Raffel et al. 2020), with the tag-stripping written as regular expressions.
Leaves out: a real HTML parser (malformed markup such as `<a href="x>y">` is only partly
removed), boilerplate removal (menus, footers), NFKC (it would turn "ﬁ" into "fi" but also
"²" into "2"), and keeping indentation: this cleaner is for prose, not for source code.
"""
import html
import unicodedata

import regex

_NEWLINES = regex.compile(r"\r\n?|[\v\f\x85\u2028\u2029]")
# V1 syntax allows set subtraction: every Cc and Cs character, and the BOM, but not \t or \n.
_CONTROL = regex.compile(r"[\p{Cc}\p{Cs}\uFEFF--[\t\n]]", regex.V1)
_DROPPED_MARKUP = regex.compile(
    r"<!--.*?-->|<(script|style)\b[^>]*>.*?</\1\s*>", regex.DOTALL | regex.IGNORECASE)
_BLOCK_TAG = regex.compile(
    r"</?(?:p|br|div|li|ul|ol|h[1-6]|tr|table|blockquote|pre|section|article|header|footer)"
    r"\b[^<>]*>", regex.IGNORECASE)
# A tag must start with a letter (or "/" and a letter): "a < b" and "x<3" are not tags.
_TAG = regex.compile(r"</?[A-Za-z][^<>]*>")
_SPACES = regex.compile(r"[^\S\n]+")  # whitespace other than a newline: tab, NBSP, U+2003, ...
_BLANK_RUNS = regex.compile(r"\n{3,}")
_MAX_PASSES = 100  # each pass peels one level of nested escaping; real text needs 1 or 2


def normalize_newlines(text):
    """Turn every line-end convention into "\\n".

    >>> normalize_newlines("a\\r\\nb\\rc\\u2028d")
    'a\\nb\\nc\\nd'
    """
    return _NEWLINES.sub("\n", text)


def remove_control(text):
    """Delete control characters (keeping tab and newline), lone surrogates and the BOM.

    >>> remove_control("\\ufeffbell\\x07 tab\\t ok\\n")
    'bell tab\\t ok\\n'
    """
    return _CONTROL.sub("", text)


def strip_html(text):
    """Remove comments, scripts, styles and tags (block tags become newlines); decode entities.

    >>> strip_html("<p>Fish &amp; chips</p><!-- ad --><b>now</b>")
    '\\nFish & chips\\nnow'
    >>> strip_html("if a < b and c > d")
    'if a < b and c > d'
    """
    text = _DROPPED_MARKUP.sub("", text)
    text = _BLOCK_TAG.sub("\n", text)
    text = _TAG.sub("", text)
    # entities are decoded after the tags are gone, so "&lt;b&gt;" survives this pass as "<b>"
    return html.unescape(text)


def normalize_whitespace(text):
    """One space between words, no spaces at line ends, at most one blank line, no outer space.

    >>> normalize_whitespace("  Hello,\\t\\u00a0world!  \\n\\n\\n\\nBye ")
    'Hello, world!\\n\\nBye'
    """
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip(" ") for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def clean_once(text):
    """One pass of the five steps in the module docstring; `clean` repeats it to a fixed point.

    >>> clean_once("&amp;lt;i&amp;gt;")  # one level of escaping is peeled per pass
    '&lt;i&gt;'
    """
    text = normalize_newlines(text)
    text = remove_control(text)
    text = strip_html(text)
    text = unicodedata.normalize("NFC", text)
    return normalize_whitespace(text)


def clean(text):
    """Clean a document: `clean_once` until nothing changes, so that clean is idempotent.

    >>> clean("<h1>Caf\\u0065\\u0301</h1>\\r\\n<p>Fish&nbsp;&amp;&nbsp;chips</p>")
    'Café\\n\\nFish & chips'
    >>> clean("&amp;lt;i&amp;gt;")
    ''
    """
    for _ in range(_MAX_PASSES):
        cleaned = clean_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text
