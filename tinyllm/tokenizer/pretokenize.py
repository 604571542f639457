"""Pre-tokenisation: cutting text into chunks before BPE ever sees it.

Byte-level BPE on raw text would happily learn tokens like "g." or "e the", gluing words to
punctuation and to their neighbours. GPT-2 avoids that by first splitting text with a regular
expression into chunks (a word with its leading space, a run of digits, a run of punctuation,
whitespace) and letting merges happen only inside a chunk. This file holds the two split patterns
we ship, the helper that turns a pattern name into a compiled regex, and the splitting of text
around special tokens such as "<|endoftext|>".

Follows: GPT-2's `encoder.py` (Radford et al., 2019) for the "gpt2" pattern and tiktoken's
`cl100k_base` for the "gpt4" one. Uses the third-party `regex` module, because the standard `re`
has no `\\p{L}` (any letter) or `\\p{N}` (any number) classes.

Leaves out: speed. The same two patterns, hand-compiled into loops over code points, are in
pretokenize_fast.py; this regex version is their specification and serves custom patterns.
"""
from functools import lru_cache

import regex

# GPT-2's pattern as published: contractions, an optional space then letters / numbers / other
# symbols, and whitespace. `\s+(?!\S)` takes a whitespace run but leaves its last character to
# start the next chunk, so " world" keeps its space: "a   b" -> ["a", "  ", " b"].
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# cl100k_base (GPT-3.5/GPT-4): case-insensitive contractions, a letter run may take one leading
# non-letter (so "(hello" -> "(hello"), numbers are cut into groups of at most three digits, and
# newlines are kept apart from other whitespace. The `++`/`?+` are possessive quantifiers: they
# never backtrack, which is faster and is how tiktoken writes it.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN}


def resolve_pattern(pattern):
    """Return the regex source for a pattern name ("gpt2", "gpt4") or a custom regex string.

    >>> resolve_pattern("gpt2") == GPT2_PATTERN
    True
    >>> resolve_pattern(r"\\w+|\\W+")
    '\\\\w+|\\\\W+'
    """
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be 'gpt2', 'gpt4' or a non-empty regex, got {pattern!r}")
    return PATTERNS.get(pattern, pattern)


@lru_cache(maxsize=32)
def compile_pattern(pattern):
    """Compile a pattern name or regex string once; later calls hit the cache.

    >>> compile_pattern("gpt2").findall("Hello world!!")
    ['Hello', ' world', '!!']
    """
    return regex.compile(resolve_pattern(pattern))


def split_chunks(text, pattern="gpt2"):
    """Cut text into the chunks that BPE merges inside of, in order.

    Every character lands in exactly one chunk for the two built-in patterns, so joining the
    chunks gives the text back. A custom pattern may skip characters; those are then dropped,
    which is the user's choice (and tiktoken's behaviour too).

    >>> split_chunks("I'll go  now.\\n")
    ['I', "'ll", ' go', ' ', ' now', '.', '\\n']
    >>> split_chunks("1234567", "gpt4")
    ['123', '456', '7']
    """
    return compile_pattern(pattern).findall(text)


@lru_cache(maxsize=32)
def _special_regex(specials):
    # Longest first, so that with "<|a|>" and "<|a|>x" both special, "<|a|>x" wins.
    ordered = sorted(specials, key=len, reverse=True)
    return regex.compile("(" + "|".join(regex.escape(s) for s in ordered) + ")")


def split_special(text, specials):
    """Split text around occurrences of special-token strings; odd positions hold the specials.

    The result alternates ordinary text and special tokens, starting and ending with (maybe
    empty) ordinary text, so it can be walked in pairs.

    >>> split_special("a<|eot|>b", ["<|eot|>"])
    ['a', '<|eot|>', 'b']
    >>> split_special("plain", [])
    ['plain']
    """
    if not specials:
        return [text]
    return _special_regex(tuple(sorted(specials))).split(text)
