"""Quality rules: ordinary prose passes; each crafted document breaks the rule it targets."""
import pytest

from tinyllm.data.quality import (RULE_NAMES, QualityRules, check, duplicate_line_fractions,
                                  duplicate_ngram_char_fraction, top_ngram_char_fraction)

PROSE = (
    "The river had risen during the night, and by morning the lower road was under water.\n"
    "Farmers who lived near the bank moved their animals to the hill behind the church,\n"
    "while children watched from the bridge with a mixture of fear and delight. Nobody\n"
    "could remember a flood like this one since the winter when the mill burned down, and\n"
    "several old men argued about that year over coffee until the rain finally stopped."
)
FILLER = ("copper lantern meadow orchard quarry saddle thimble violet walnut yonder "
          "basket candle dagger ember falcon garnet harbor island jasper kettle").split()


def _unique_words(n):
    """n distinct words: no n-gram of them ever repeats."""
    return [f"{FILLER[i % len(FILLER)]}{'s' * (i // len(FILLER))}" for i in range(n)]


CRAFTED = {
    "word_count": "The cat sat on the mat with the dog.",
    "mean_word_length": " ".join("a b c d e f g h i j k l m n o p q r s t u v w x y z".split() * 3)
    + " the and",
    "symbol_ratio": PROSE + " #news" * 9,
    "digit_fraction": PROSE + " " + " ".join(str(10 ** 6 + i) for i in range(30)),
    "alphabetic_words": PROSE + " -----" * 30,
    "stop_words": " ".join(_unique_words(60)),
    "duplicate_lines": PROSE + "\nread more\n" * 4,
    "duplicate_line_chars": PROSE + "\n" + PROSE.split("\n")[0] * 2 + "\n"
    + PROSE.split("\n")[0] * 2,
    "top_ngram_chars": " ".join(f"the cat {w}" for w in _unique_words(25)) + " and with",
    "duplicate_ngram_chars": PROSE + " " + " ".join(PROSE.split()[:30]),
}


def test_prose_passes_the_defaults():
    assert len(PROSE.split()) >= 50
    assert check(PROSE) is None


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_each_rule_catches_its_crafted_document(rule):
    assert check(CRAFTED[rule]) == rule


def test_thresholds_are_configurable():
    assert check("The cat sat on the mat with the dog.", QualityRules(min_words=5)) is None
    assert check(PROSE, QualityRules(max_words=20)) == "word_count"
    assert check(PROSE, QualityRules(min_stop_words=9)) == "stop_words"


def test_ngram_fractions_known_answers():
    words = "a a a a".split()
    assert top_ngram_char_fraction(words, 2) == 1.0  # ("a", "a") three times, overlapping
    assert top_ngram_char_fraction("a b c".split(), 2) == 0.0  # nothing repeats
    assert duplicate_ngram_char_fraction(words, 2) == 0.75  # all but the first word covered
    assert duplicate_ngram_char_fraction("x y".split(), 5) == 0.0
    assert duplicate_ngram_char_fraction([], 5) == top_ngram_char_fraction([], 2) == 0.0


def test_duplicate_lines_ignore_blank_lines():
    assert duplicate_line_fractions("a\n\nb\n\nc") == (0.0, 0.0)
    assert duplicate_line_fractions("") == (0.0, 0.0)
    assert duplicate_line_fractions("ab\nab\nab\nc") == (0.5, 4 / 7)
