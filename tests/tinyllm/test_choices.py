"""tinyllm/choices.py: acc, acc_norm and acc_token_mean on a hand-made file whose scores can be
worked out by hand, padding that changes no score, left truncation, and untrusted records
refused with file:line."""
import json
import math

import numpy as np
import pytest

from autograd import Tensor
from tinyllm.choices import (ChoiceItem, evaluate_choices, load_choices, score_item)
from tinyllm.evaluate import EvaluationError, token_logprobs
from tinyllm.tokenizer import CharTokenizer

from .tiny_models import tiny_gpt

TOK = CharTokenizer(" abcdefgh")  # id 0 is the space, then a..h
SHARPNESS = 4.0


class Successor:
    """A stand-in model that expects the next character of " abcdefgh" (after h, a space):
    the logit of that character is SHARPNESS, every other 0. So a token the model expects has
    log-probability HI, any other LO."""

    config = type("Config", (), {"block_size": 16, "vocab_size": 9})()

    def eval(self):
        return self

    def __call__(self, idx):
        logits = np.zeros((*idx.shape, 9), dtype=np.float32)  # (B, T, V)
        np.put_along_axis(logits, ((idx + 1) % 9)[..., None], SHARPNESS, axis=-1)
        return Tensor(logits), None


Z = math.exp(SHARPNESS) + 8  # the softmax's denominator at every position
HI, LO = SHARPNESS - math.log(Z), -math.log(Z)

# Each ending is scored with the space before it; after "h" the space is expected (HI), after
# "b" it is not (LO); after the space the model expects "a".
ITEMS = [  # (record, the scores of its two endings, worked out by hand)
    ({"ctx": "abcdefgh", "endings": ["abc", "ahh"], "label": 0},
     [4 * HI, 2 * HI + 2 * LO]),  # every rule is right
    ({"ctx": "ab", "endings": ["e", "abcdee"], "label": 1},
     [2 * LO, 2 * LO + 5 * HI]),  # the sum prefers the short ending; per character or token, not
    ({"ctx": "abcdefgh", "endings": ["c", "ccc"], "label": 1},
     [HI + LO, HI + 3 * LO]),  # per character (1 vs 3) the long one; per token (2 vs 4) not
]


@pytest.fixture
def choices_file(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(record) for record, _ in ITEMS) + "\n\n")
    return path


def test_scores_are_the_hand_computed_log_probabilities(choices_file):
    for item, (_, expected) in zip(load_choices(choices_file), ITEMS):
        assert score_item(Successor(), TOK, item).logprob == pytest.approx(expected, rel=1e-5)


def test_each_rule_counts_its_right_answers(choices_file):
    result = evaluate_choices(Successor(), TOK, load_choices(choices_file))
    assert (result.items, result.correct, result.correct_norm, result.correct_token_mean) == (
        3, 1, 3, 2)
    assert result.as_dict()["acc_norm"] == 1.0


def _sum_alone(model, tokens, n_ending):
    """The summed log-probability of the last n_ending tokens, the row run on its own."""
    x, y = np.array([tokens[:-1]]), np.array([tokens[1:]])
    return token_logprobs(model, x, y)[0, -n_ending:].sum()


def test_padding_endings_of_different_lengths_changes_no_score():
    model = tiny_gpt(vocab_size=9, block_size=16)
    item = ChoiceItem("abca", ("h", "bbbbbbbb", "cha"), label=0)
    scores = score_item(model, TOK, item)
    for k, ending in enumerate(item.endings):
        ending_ids = TOK.encode(" " + ending)
        alone = _sum_alone(model, TOK.encode(item.context) + ending_ids, len(ending_ids))
        assert scores.logprob[k] == pytest.approx(alone, rel=1e-5)
    assert scores.n_tokens.tolist() == [2, 9, 4] and scores.n_chars.tolist() == [1, 8, 3]


def test_a_long_context_loses_tokens_on_the_left():
    model = tiny_gpt(vocab_size=9, block_size=8)
    long = ChoiceItem("hgfedcbahgfedcba", ("ab", "hhhh"), label=0)
    scores = score_item(model, TOK, long)
    for k, ending in enumerate(long.endings):  # 9 tokens fit: the inputs are all but the last
        kept = long.context[-(9 - len(ending) - 1):]
        alone = score_item(model, TOK, ChoiceItem(kept, (ending, ending), label=0))
        assert scores.logprob[k] == pytest.approx(alone.logprob[0], rel=1e-5)


def test_an_ending_longer_than_the_block_is_an_error():
    item = ChoiceItem("ab", ("abcdefgh",), label=0, where="f.jsonl:7")
    with pytest.raises(EvaluationError, match="f.jsonl:7: an ending of 9 tokens"):
        score_item(tiny_gpt(vocab_size=9, block_size=8), TOK, item)


GOOD = json.dumps({"ctx": "a", "endings": ["b", "c"], "label": 1})


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('{"endings": ["b", "c"], "label": 0}', "'ctx' must be a non-empty string"),
    ('{"ctx": "", "endings": ["b", "c"], "label": 0}', "'ctx' must be a non-empty string"),
    ('{"ctx": "a", "endings": "bc", "label": 0}', "'endings' must be a list"),
    ('{"ctx": "a", "endings": ["b"], "label": 0}', "'endings' must be a list of at least 2"),
    ('{"ctx": "a", "endings": ["b", 3], "label": 0}', "every ending must be a non-empty"),
    ('{"ctx": "a", "endings": ["b", ""], "label": 0}', "every ending must be a non-empty"),
    ('{"ctx": "a", "endings": ["b", "c"], "label": 2}', r"'label' must be an integer in \[0, 2\)"),
    ('{"ctx": "a", "endings": ["b", "c"], "label": "1"}', "'label' must be an integer"),
    ('{"ctx": "a", "endings": ["b", "c"], "label": true}', "'label' must be an integer"),
])
def test_a_bad_record_is_refused_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + line + "\n")
    with pytest.raises(EvaluationError, match=f"bad.jsonl:2: {message}"):
        load_choices(path)


def test_a_file_without_records_is_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(EvaluationError, match="no records"):
        load_choices(tmp_path / "empty.jsonl")
