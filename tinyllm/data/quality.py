"""Quality heuristics: cheap rules that reject documents which are not running prose.

A web crawl is full of text that is no use for learning language: navigation bars, tables of
numbers, keyword spam, pages that repeat one line a hundred times. Gopher's authors (Rae et al.
2021, appendix A.1.1) found that a handful of counts separate these from prose well enough,
with no model at all. `check(text)` applies them in order and returns the name of the first
rule the document breaks, or None if it passes. The defaults below are Gopher's, except the
digit fraction, which is ours.

Words are whitespace-separated strings, as in Gopher ("well," is one word of length 5).

| rule                  | rejects when                                              | default    |
| --------------------- | --------------------------------------------------------- | ---------- |
| word_count            | fewer than min_words or more than max_words words         | 50, 100000 |
| mean_word_length      | mean word length outside [min, max] characters            | 3, 10      |
| symbol_ratio          | ("#" + "..." + "…") per word above                        | 0.1        |
| digit_fraction        | digits / non-space characters above                       | 0.2        |
| alphabetic_words      | fraction of words with a letter below                     | 0.8        |
| stop_words            | fewer distinct of {the be to of and that have with}       | 2          |
| duplicate_lines       | repeated lines / lines above                              | 0.3        |
| duplicate_line_chars  | characters in repeated lines / characters above           | 0.2        |
| top_ngram_chars       | characters in the commonest n-gram (n = 2, 3, 4) above    | .20 .18 .16|
| duplicate_ngram_chars | characters in repeated n-grams (n = 5 ... 10) above       | .15 ... .10|

"Repeated" counts every occurrence after the first, so a page that is one paragraph twice
scores 0.5 on duplicate_line_chars and on duplicate_ngram_chars. Character fractions count
each word once, however many n-grams cover it.

Stop words matter because every English sentence has some ("the", "of", "and"), while lists,
code and spam mostly do not. Note what this implies: the rules assume English prose of at
least a paragraph. Tiny Shakespeare's speeches are mostly shorter than 50 words, which is why
the pipeline runs these rules only when asked.

Follows: Gopher's MassiveText quality filter (Rae et al. 2021), with C4's (Raffel et al. 2020)
idea that a few hand rules go a long way.
Leaves out: Gopher's bullet-line and ellipsis-line fractions, C4's "lorem ipsum", curly-brace and
bad-words rules, language identification, and model-based perplexity filters (CCNet).
"""
import string
from collections import Counter
from dataclasses import dataclass

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})


@dataclass(frozen=True)
class QualityRules:
    """The thresholds of every rule; each default is Gopher's unless marked."""

    min_words: int = 50  # shorter texts are fragments: captions, buttons, headings
    max_words: int = 100_000  # longer ones are usually dumps (logs, concatenated lists)
    min_mean_word_length: float = 3.0  # below: lists of letters, stuttered text
    max_mean_word_length: float = 10.0  # above: URLs, hashes, words glued together
    max_symbol_word_ratio: float = 0.1  # hashtags and "..." mark spam and truncated snippets
    max_digit_fraction: float = 0.2  # (ours) tables, prices, phone lists
    min_alphabetic_word_fraction: float = 0.8  # words like "|", "--", "1999" are not prose
    min_stop_words: int = 2
    max_duplicate_line_fraction: float = 0.3
    max_duplicate_line_char_fraction: float = 0.2
    max_top_ngram_char_fraction: tuple = ((2, 0.20), (3, 0.18), (4, 0.16))
    max_duplicate_ngram_char_fraction: tuple = (
        (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def check(text, rules=QualityRules()):
    """Name of the first rule `text` breaks, or None when it passes them all.

    >>> check("Buy now! " * 40)
    'stop_words'
    >>> prose = ("The cat sat on the mat and looked at the dog with some interest, "
    ...          "as cats do. ") * 3 + "Then it slept until the evening came, and that was all."
    >>> check(prose)  # 62 words, but one sentence three times
    'duplicate_ngram_chars'
    """
    words = text.split()
    for name, breaks in _RULES:
        if breaks(text, words, rules):
            return name
    return None


def top_ngram_char_fraction(words, n):
    """Characters of the words inside an occurrence of the most frequent word n-gram / all
    characters; 0 when no n-gram occurs twice.

    Each word counts once, so overlapping occurrences ("a a a" has "a a" twice) cannot push
    the fraction above 1 as Gopher's count * length formula can.

    >>> top_ngram_char_fraction("to be or not to be".split(), 2)  # "to be" twice: 8 of 13
    0.6153846153846154
    """
    grams = _ngrams(words, n)
    if not grams:
        return 0.0
    top, count = Counter(grams).most_common(1)[0]
    if count < 2:
        return 0.0
    return _covered_fraction(words, [i for i, gram in enumerate(grams) if gram == top], n)


def duplicate_ngram_char_fraction(words, n):
    """Characters of the words inside a repeat of an earlier word n-gram / all characters.

    Each word counts once however many repeated n-grams cover it.

    >>> duplicate_ngram_char_fraction("a b c a b c d".split(), 3)  # second "a b c": 3 of 7
    0.42857142857142855
    """
    seen, starts = set(), []
    for i, gram in enumerate(_ngrams(words, n)):
        if gram in seen:
            starts.append(i)
        seen.add(gram)
    return _covered_fraction(words, starts, n)


def _ngrams(words, n):
    return list(zip(*(words[i:] for i in range(n))))


def _covered_fraction(words, starts, n):
    """Characters of the words covered by the n-grams starting at `starts` / all characters."""
    covered = [False] * len(words)
    for i in starts:
        covered[i:i + n] = [True] * n
    total = sum(map(len, words))
    return sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0


def duplicate_line_fractions(text):
    """(repeated lines / lines, characters in repeated lines / characters), blank lines aside.

    >>> duplicate_line_fractions("ok\\nspam\\nspam\\nspam")  # 2 of 4 lines, 8 of 14 chars
    (0.5, 0.5714285714285714)
    """
    lines = [line for line in text.split("\n") if line.strip()]
    seen, repeated = set(), []
    for line in lines:
        if line in seen:
            repeated.append(line)
        seen.add(line)
    chars = sum(map(len, lines))
    if not lines or not chars:
        return 0.0, 0.0
    return len(repeated) / len(lines), sum(map(len, repeated)) / chars


# --- the rules, each (text, words, rules) -> True when the document breaks it ---


def _word_count(text, words, rules):
    return not rules.min_words <= len(words) <= rules.max_words


def _mean_word_length(text, words, rules):
    mean = sum(map(len, words)) / max(len(words), 1)
    return not rules.min_mean_word_length <= mean <= rules.max_mean_word_length


def _symbol_ratio(text, words, rules):
    symbols = text.count("#") + text.count("...") + text.count("\u2026")
    return symbols > rules.max_symbol_word_ratio * len(words)


def _digit_fraction(text, words, rules):
    chars = sum(map(len, words))
    return sum(c.isdigit() for c in text) > rules.max_digit_fraction * chars


def _alphabetic_words(text, words, rules):
    alphabetic = sum(any(c.isalpha() for c in w) for w in words)
    return alphabetic < rules.min_alphabetic_word_fraction * len(words)


def _stop_words(text, words, rules):
    present = {w.strip(string.punctuation).lower() for w in words} & STOP_WORDS
    return len(present) < rules.min_stop_words


def _duplicate_lines(text, words, rules):
    return duplicate_line_fractions(text)[0] > rules.max_duplicate_line_fraction


def _duplicate_line_chars(text, words, rules):
    return duplicate_line_fractions(text)[1] > rules.max_duplicate_line_char_fraction


def _top_ngram_chars(text, words, rules):
    return any(top_ngram_char_fraction(words, n) > limit
               for n, limit in rules.max_top_ngram_char_fraction)


def _duplicate_ngram_chars(text, words, rules):
    return any(duplicate_ngram_char_fraction(words, n) > limit
               for n, limit in rules.max_duplicate_ngram_char_fraction)


# Cheapest first, so most rejected documents cost one or two counts.
_RULES = (
    ("word_count", _word_count),
    ("mean_word_length", _mean_word_length),
    ("symbol_ratio", _symbol_ratio),
    ("digit_fraction", _digit_fraction),
    ("alphabetic_words", _alphabetic_words),
    ("stop_words", _stop_words),
    ("duplicate_lines", _duplicate_lines),
    ("duplicate_line_chars", _duplicate_line_chars),
    ("top_ngram_chars", _top_ngram_chars),
    ("duplicate_ngram_chars", _duplicate_ngram_chars),
)
RULE_NAMES = tuple(name for name, _ in _RULES)
