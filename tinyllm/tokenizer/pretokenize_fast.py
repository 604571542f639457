"""A hand-written pre-tokeniser: the two built-in split patterns as loops over code points.

A regex engine is general: at each position it tries the pattern's alternatives in order, with
backtracking, until one matches. Our two patterns (pretokenize.py) need far less: which
alternative matches, and how far, is decided by the classes of the next few characters. So a
short compiled loop can replace the regex and run an order of magnitude faster, which matters
because splitting was most of the encoding time (benchmarks/tokenizer.py).

Each character is first mapped to one of four classes by a table over all 0x110000 code points:
letter (\\p{L}), number (\\p{N}), whitespace (\\s) or other. The table is filled by asking the
`regex` module itself, so the two agree on every code point (same Unicode version). The
case-insensitive contractions of "gpt4" need one more table: which characters fold to which
ASCII letter ("S" and the long s "ſ" both fold to "s").

Each `_end_*` function below returns where the chunk starting at position i ends. Its branches
follow the pattern's alternatives in the pattern's order, because the first one that matches
wins. The tests check the chunks equal `regex.findall` on arbitrary text.

Leaves out: custom patterns, which go through the regex (pretokenize.split_chunks).

Shapes: T code points of the text, K chunks.
"""
from functools import lru_cache

import numpy as np
import regex

from autograd.kernels.numba_support import njit

from .pretokenize import GPT2_PATTERN, GPT4_PATTERN

OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
_APOSTROPHE, _SPACE, _CR, _LF = ord("'"), ord(" "), ord("\r"), ord("\n")
_S, _T, _M, _D, _R, _V, _L, _E = (ord(c) for c in "stmdrvle")


@lru_cache(maxsize=1)
def char_tables():
    """(classes, folds): uint8 tables over all code points, built once from `regex`.

    >>> classes, folds = char_tables()
    >>> [int(classes[ord(c)]) for c in "a1 ."] == [LETTER, NUMBER, SPACE, OTHER]
    True
    >>> chr(folds[ord("ſ")])
    's'
    """
    cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)])  # no surrogates
    everything = cps.astype("<u4").tobytes().decode("utf-32-le")  # every code point once
    classes = np.zeros(0x110000, dtype=np.uint8)  # 0x110000, OTHER unless found below
    for cls, pattern in ((LETTER, r"\p{L}+"), (NUMBER, r"\p{N}+"), (SPACE, r"\s+")):
        for m in regex.finditer(pattern, everything):
            classes[cps[m.start():m.end()]] = cls
    folds = np.zeros(0x110000, dtype=np.uint8)  # 0x110000, 0 unless it folds to a letter below
    for letter in "stmdrvle":
        for m in regex.finditer(f"(?i:{letter})", everything):
            folds[cps[m.start()]] = ord(letter)
    return classes, folds


def chunk_ends(cps, pattern):
    """End positions of the chunks of code points `cps` (T,) under "gpt2" or "gpt4"; (K,).

    >>> chunk_ends(np.array([ord(c) for c in "Hi  there"]), "gpt2").tolist()
    [2, 3, 9]
    """
    name = _fast_pattern(pattern)
    if name is None:
        raise ValueError(f"no compiled splitter for {pattern!r}; use pretokenize.split_chunks")
    classes, folds = char_tables()
    cps = np.asarray(cps, dtype=np.uint32)  # one dtype, so Numba compiles one version
    return _chunk_ends(cps, classes, folds, name == "gpt4")


def has_fast_split(pattern):
    """Whether `pattern` is one of the two built-in patterns this module implements.

    >>> has_fast_split("gpt4"), has_fast_split(r"\\w+")
    (True, False)
    """
    return _fast_pattern(pattern) is not None


def _fast_pattern(pattern):
    return {"gpt2": "gpt2", "gpt4": "gpt4", GPT2_PATTERN: "gpt2", GPT4_PATTERN: "gpt4"}.get(pattern)


def code_points(text):
    """The text as an array of code points (T,) uint32; a lone surrogate raises ValueError.

    A lone surrogate (say from a bad JSON escape) is not text and has no UTF-8 form, so it is
    refused here, by name and position, before any tokenizer sees it.

    >>> code_points("hé€").tolist()
    [104, 233, 8364]
    """
    try:
        # a bytearray gives a writable array: Numba compiles one version for these and the rest
        return np.frombuffer(bytearray(text.encode("utf-32-le")), dtype=np.uint32)
    except UnicodeEncodeError as e:
        raise ValueError(f"lone surrogate U+{ord(text[e.start]):04X} at position {e.start} cannot "
                         "be encoded as UTF-8") from None


def split_chunks_fast(text, pattern="gpt2"):
    """The same chunks as `pretokenize.split_chunks`, for the built-in patterns only.

    >>> split_chunks_fast("I'll go  now.\\n")
    ['I', "'ll", ' go', ' ', ' now', '.', '\\n']
    """
    ends = chunk_ends(code_points(text), pattern)
    return [text[start:end] for start, end in zip([0, *ends[:-1].tolist()], ends.tolist())]


@njit(cache=True)
def _chunk_ends(cps, classes, folds, gpt4):
    ends = np.empty(cps.shape[0], dtype=np.int64)  # K <= T
    k, i = 0, 0
    while i < cps.shape[0]:
        i = _end_gpt4(cps, classes, folds, i) if gpt4 else _end_gpt2(cps, classes, folds, i)
        ends[k] = i
        k += 1
    return ends[:k]


@njit(cache=True)
def _run_end(cps, classes, i, cls):
    # the end of the run of characters of class `cls` that starts at i
    while i < cps.shape[0] and classes[cps[i]] == cls:
        i += 1
    return i


@njit(cache=True)
def _is_pair(c1, c2, a1, a2):
    return c1 == a1 and c2 == a2


@njit(cache=True)
def _contraction_len(cps, folds, i, fold):
    # 's 't 'm 'd (2 characters) or 're 've 'll (3) starting at i, else 0. With fold=False only
    # lowercase counts (gpt2); with fold=True any case (gpt4's (?i:...)).
    n = cps.shape[0]
    if cps[i] != _APOSTROPHE or i + 1 >= n:
        return 0
    c1 = folds[cps[i + 1]] if fold else cps[i + 1]
    if c1 == _S or c1 == _T or c1 == _M or c1 == _D:
        return 2
    if i + 2 >= n:
        return 0
    c2 = folds[cps[i + 2]] if fold else cps[i + 2]
    if _is_pair(c1, c2, _R, _E) or _is_pair(c1, c2, _V, _E) or _is_pair(c1, c2, _L, _L):
        return 3
    return 0


@njit(cache=True)
def _whitespace_end(cps, classes, i):
    # \s+(?!\S)|\s+ : a whitespace run, less its last character when a non-space follows, so
    # that character can start the next chunk (" world"); a run of one is taken whole.
    end = _run_end(cps, classes, i, SPACE)
    if end < cps.shape[0] and end - i >= 2:
        return end - 1
    return end


@njit(cache=True)
def _end_gpt2(cps, classes, folds, i):
    # 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    n = cps.shape[0]
    k = _contraction_len(cps, folds, i, False)
    if k:
        return i + k
    # " ?" then a run of one class: letters, numbers or other (the three middle alternatives)
    j = i + 1 if cps[i] == _SPACE and i + 1 < n and classes[cps[i + 1]] != SPACE else i
    if classes[cps[j]] != SPACE:
        return _run_end(cps, classes, j, classes[cps[j]])
    return _whitespace_end(cps, classes, i)


@njit(cache=True)
def _end_gpt4(cps, classes, folds, i):
    # '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
    # |\s++$|\s*[\r\n]|\s+(?!\S)|\s
    n, cls = cps.shape[0], classes[cps[i]]
    k = _contraction_len(cps, folds, i, True)
    if k:
        return i + k
    # [^\r\n\p{L}\p{N}]?+\p{L}++ : letters, maybe led by one character that is not a newline,
    # letter or number: "(hello", " hello", "\thello"
    if cls == LETTER:
        return _run_end(cps, classes, i, LETTER)
    leads = cls != NUMBER and cps[i] != _CR and cps[i] != _LF
    if leads and i + 1 < n and classes[cps[i + 1]] == LETTER:
        return _run_end(cps, classes, i + 1, LETTER)
    if cls == NUMBER:  # \p{N}{1,3}+
        return min(_run_end(cps, classes, i, NUMBER), i + 3)
    #  ?[^\s\p{L}\p{N}]++[\r\n]*+ : other symbols, then any newlines right after them
    j = i + 1 if cps[i] == _SPACE and i + 1 < n and classes[cps[i + 1]] == OTHER else i
    if classes[cps[j]] == OTHER:
        end = _run_end(cps, classes, j, OTHER)
        while end < n and (cps[end] == _CR or cps[end] == _LF):
            end += 1
        return end
    return _whitespace_end_gpt4(cps, classes, i)


@njit(cache=True)
def _whitespace_end_gpt4(cps, classes, i):
    # \s++$ | \s*[\r\n] | \s+(?!\S) | \s, for a whitespace character at i
    end = _run_end(cps, classes, i, SPACE)
    if end == cps.shape[0]:
        return end  # the run reaches the end of the text
    for k in range(end - 1, i - 1, -1):
        if cps[k] == _CR or cps[k] == _LF:
            return k + 1  # up to the run's last newline
    return _whitespace_end(cps, classes, i)
