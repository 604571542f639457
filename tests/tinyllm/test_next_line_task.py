"""tinyllm/next_line_task.py: the same items for the same seed, well-formed questions, and never
a line of the training text."""
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from tinyllm.config import TrainConfig
from tinyllm.data.batches import split_train_val
from tinyllm.evaluate import EvaluationError, run_val_ids
from tinyllm.next_line_task import MIN_CHARS, next_line_items
from tinyllm.tokenizer import CharTokenizer

SHAKESPEARE = os.environ.get("TINYLLM_DATA")


def _play(n_lines, seed=0):
    """Lines of varied length made of a few words: many candidates of similar length."""
    rng = np.random.default_rng(seed)
    words = ["my", "lord", "the", "king", "is", "dead", "long", "live", "thee", "sweet"]
    return "\n".join(" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(n_lines))


def _check_items(items, text, n_context=3):
    """Every item well formed, and every piece of it a part of `text`."""
    whole_lines = text.split("\n")[1:-1]  # the first and last may be partial
    for item in items:
        true = item.endings[item.label]
        assert item.context + "\n" + true in text
        assert item.context.count("\n") == n_context - 1 and len(true) >= MIN_CHARS
        assert len(set(item.endings)) == len(item.endings) == 4
        for ending in item.endings:
            assert ending in whole_lines
            assert abs(len(ending) - len(true)) <= max(3, len(true) // 5)


def test_the_same_seed_gives_the_same_items():
    text = _play(300)
    first, again = next_line_items(text, 50, seed=3), next_line_items(text, 50, seed=3)
    assert first == again
    assert first != next_line_items(text, 50, seed=4)
    _check_items(first, text)


def test_items_come_from_the_validation_split_only(tmp_path):
    train_part = _play(400, seed=1).upper()  # capitals: no line of it can occur in val
    text = train_part + "\n" + _play(100, seed=2)
    (tmp_path / "play.txt").write_text(text)
    # a tenth of the text: the cut falls well inside the lower-case part
    cfg = TrainConfig(data=str(tmp_path / "play.txt"), val_fraction=0.1)
    tok = CharTokenizer.from_text(text)
    val_text = tok.decode(run_val_ids(dataclasses.asdict(cfg), tok).tolist())
    assert val_text == split_train_val(text, 0.1)[1]
    items = next_line_items(val_text, 25, seed=0)
    _check_items(items, val_text)
    assert not any(c.isupper() for item in items for c in item.context + "".join(item.endings))


@pytest.mark.skipif(not SHAKESPEARE, reason="set TINYLLM_DATA to tinyshakespeare.txt")
def test_shakespeare_items_occur_in_the_validation_split():
    text = Path(SHAKESPEARE).read_text(encoding="utf-8")
    train_text, val_text = split_train_val(text, 0.1)
    items = next_line_items(val_text, 200, seed=0)
    _check_items(items, val_text)
    assert sum(item.context + "\n" + item.endings[item.label] in train_text
               for item in items) == 0


def test_a_text_too_short_for_the_items_asked_is_an_error():
    with pytest.raises(EvaluationError, match="only"):
        next_line_items(_play(12), 50)
