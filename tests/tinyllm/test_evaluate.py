"""tinyllm/evaluate.py: the sliding windows score every token exactly once, the batched pass
equals a token-by-token loop, the units (bytes, characters) are counted right, and the
validation split is rebuilt as training made it."""
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.config import TrainConfig
from tinyllm.data.pipeline import PrepareOptions, prepare
from tinyllm.data.token_files import open_tokens
from tinyllm.evaluate import (EvaluationError, dataset_val_ids, perplexity, perplexity_of_text,
                              run_val_ids, scored_length, windows)
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

from .tiny_models import tiny_gpt

LETTERS = CharTokenizer("abcdefghijk")  # 11 characters: tiny_gpt's vocabulary


@given(st.integers(2, 60), st.integers(1, 12), st.data())
def test_every_target_is_scored_once_with_enough_context(n, block, data):
    stride = data.draw(st.integers(1, block))
    scored = []
    for begin, end, skip in windows(n, block, stride):
        assert 0 <= skip < end - begin <= block
        for j in range(begin + 1 + skip, end + 1):  # the targets this window scores
            assert j - begin >= min(j, block - stride)  # tokens of context it sees
            scored.append(j)
    assert scored == list(range(1, n))


@given(st.integers(2, 60), st.integers(1, 12))
def test_stride_equal_to_block_gives_disjoint_windows(n, block):
    wins = list(windows(n, block, block))
    assert all(skip == 0 for _, _, skip in wins)
    begins, ends = [w[0] for w in wins], [w[1] for w in wins]
    assert begins == [0] + ends[:-1]  # each window starts where the one before ended


def _token_by_token(model, ids, stride):
    """Total nats, each token predicted alone from the context its window gives it: target j
    is scored by the first window reaching it, k = max(0, ceil((j - block) / stride))."""
    block, nats = model.config.block_size, 0.0
    for j in range(1, len(ids)):
        start = max(0, math.ceil((j - block) / stride)) * stride
        logits = model(np.array([ids[start:j]]))[0].data[0, -1].astype(np.float64)  # (V,)
        log_z = np.log(np.exp(logits - logits.max()).sum()) + logits.max()
        nats -= logits[ids[j]] - log_z
    return nats


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_perplexity_equals_a_token_by_token_loop(stride):
    model = tiny_gpt(block_size=8)
    ids = np.random.default_rng(1).integers(0, 11, 29)  # (N,): 3+ windows, a short last one
    result = perplexity(model, LETTERS, ids, stride=stride)
    expected = _token_by_token(model, ids, stride)
    assert result.tokens == len(ids) - 1
    assert result.nats == pytest.approx(expected, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(expected / (len(ids) - 1)), rel=1e-5)


def test_a_text_shorter_than_a_block_is_one_window():
    model = tiny_gpt(block_size=8)
    ids = [3, 1, 4, 1, 5]
    assert perplexity(model, LETTERS, ids).nats == pytest.approx(
        _token_by_token(model, ids, 4), rel=1e-5)


def test_dropout_is_off_during_evaluation():
    model = tiny_gpt(dropout=0.5).train()
    ids = np.arange(20) % 11
    assert perplexity(model, LETTERS, ids).nats == perplexity(model, LETTERS, ids).nats


def test_character_models_report_bits_per_character():
    result = perplexity_of_text(tiny_gpt(), LETTERS, "abcabcdkkjihg")
    assert (result.unit, result.length, result.tokens) == ("character", 12, 12)
    assert result.bits_per_unit == pytest.approx(result.mean_loss / math.log(2))
    assert result.as_dict()["bits_per_character"] == result.bits_per_unit


def test_bytes_are_those_of_the_scored_tokens_and_special_tokens_count_none():
    tok = BPETokenizer.train("the cat sat on the mat " * 20, 270,
                             special_tokens=["<|endoftext|>"])
    text = "thé cat sat"
    ids = tok.encode(text + "<|endoftext|>", allowed_special="all")
    assert scored_length(tok, ids[1:]) == (
        len(text.encode("utf-8")) - len(tok.token_bytes(ids[0])), "byte")
    assert scored_length(tok, ids[1:], chunk=2) == scored_length(tok, ids[1:])


def test_a_character_the_tokenizer_lacks_is_named_with_its_position():
    with pytest.raises(ValueError, match=r"'Z' \(U\+005A\) at position 3"):
        perplexity_of_text(tiny_gpt(), LETTERS, "abcZd")


@pytest.mark.parametrize("stride", [0, 9])
def test_a_stride_outside_the_block_is_refused(stride):
    with pytest.raises(EvaluationError, match="stride must be in"):
        perplexity(tiny_gpt(block_size=8), LETTERS, [1, 2, 3], stride=stride)


def test_one_token_cannot_be_scored():
    with pytest.raises(EvaluationError, match="at least 2"):
        perplexity(tiny_gpt(), LETTERS, [1])


def test_the_runs_validation_split_is_rebuilt(tmp_path):
    text = "".join(np.random.default_rng(0).choice(list("abc \n"), 1000))
    (tmp_path / "t.txt").write_text(text)
    cfg = TrainConfig(data=str(tmp_path / "t.txt"), val_fraction=0.2)
    tok = CharTokenizer.from_text(text)
    assert run_val_ids(dataclasses.asdict(cfg), tok).tolist() == tok.encode(text[800:])


def test_a_model_without_training_data_needs_a_text():
    with pytest.raises(EvaluationError, match="no training data"):
        run_val_ids(None, LETTERS)
    with pytest.raises(EvaluationError, match="unreadable"):
        run_val_ids({"no_such_field": 1}, LETTERS)


def test_a_datasets_val_split_is_read_in_its_own_tokenizer(tmp_path):
    (tmp_path / "src.txt").write_text("\n\n".join(f"doc {i} abc" for i in range(30)))
    prepare(tmp_path / "src.txt", tmp_path / "data", "char", PrepareOptions(val_fraction=0.2),
            progress=False)
    tok = CharTokenizer.load(tmp_path / "data" / "tokenizer.json")
    ids = dataset_val_ids(tmp_path / "data", tok)
    assert ids.tolist() == open_tokens(tmp_path / "data", "val").tolist() and len(ids) > 0
    with pytest.raises(ValueError, match="another tokenizer"):
        dataset_val_ids(tmp_path / "data", LETTERS)
