"""tinyllm/finetune/dpo.py: ln 2 when the policy is the reference, the loss and its gradient
against the formula and finite differences, prompt positions ignored, training moves the
rewards the right way and never touches the reference."""
import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import Tensor, gradcheck
from autograd.testing import values
from tinyllm.finetune.data import DataError
from tinyllm.finetune.dpo import DPOTask, METRICS, dpo_loss, response_logprobs
from tinyllm.finetune.sft import IGNORE_INDEX
from tinyllm.optim import AdamW

from .helpers import PREFERENCES, char_tokenizer, splits, tiny_gpt


def log_softmax(logits):
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def random_targets(rng, R, T, V):
    """(R, T) targets: a random prompt length (ignored), then response tokens, then padding."""
    y = np.full((R, T), IGNORE_INDEX)
    for r in range(R):
        start = rng.integers(0, T)
        stop = rng.integers(start + 1, T + 1)
        y[r, start:stop] = rng.integers(0, V, stop - start)
    return y


def formula(logits, y, reference, beta, average):
    """The paper's loss in plain NumPy: -log sigmoid(beta (pi_c - ref_c - pi_r + ref_r))."""
    logp = np.take_along_axis(log_softmax(logits), np.maximum(y, 0)[..., None], -1)[..., 0]
    logp = np.where(y != IGNORE_INDEX, logp, 0.0).sum(1)  # (R,)
    if average:
        logp /= (y != IGNORE_INDEX).sum(1)
    B = len(y) // 2
    z = beta * ((logp[:B] - reference[:, 0]) - (logp[B:] - reference[:, 1]))  # (B,)
    return np.mean(np.log1p(np.exp(-z)))


def pair_loss(logits, y, reference, beta, average):
    logp = response_logprobs(logits, y, average)  # (2B,)
    return dpo_loss(logp.reshape(2, len(y) // 2).T, reference, beta)[0]


@given(B=st.integers(1, 3), T=st.integers(1, 6), V=st.integers(2, 6), seed=st.integers(0, 99),
       beta=st.floats(0.05, 2.0), average=st.booleans(), data=st.data())
def test_the_loss_is_the_papers_and_its_gradient_checks(B, T, V, seed, beta, average, data):
    rng = np.random.default_rng(seed)
    y = random_targets(rng, 2 * B, T, V)
    logits = data.draw(values((2 * B, T, V), -3, 3))
    reference = rng.normal(-T, 1.0, (B, 2))  # (B, 2) log-probabilities of a reference model
    loss = pair_loss(Tensor(logits), y, reference, beta, average)
    np.testing.assert_allclose(loss.item(), formula(logits, y, reference, beta, average),
                               rtol=1e-10)
    assert gradcheck(lambda t: pair_loss(t, y, reference, beta, average), [logits])


def test_logits_at_prompt_and_padding_positions_do_not_enter():
    rng = np.random.default_rng(0)
    y = random_targets(rng, 4, 7, 5)  # (4, 7)
    logits = rng.standard_normal((4, 7, 5))
    reference = rng.standard_normal((2, 2))
    loss = pair_loss(Tensor(logits), y, reference, 0.5, False).item()
    moved = logits + np.where(y == IGNORE_INDEX, 1.0, 0.0)[..., None] * rng.normal(0, 5, 5)
    assert pair_loss(Tensor(moved), y, reference, 0.5, False).item() == loss
    response = logits + np.where(y != IGNORE_INDEX, 1.0, 0.0)[..., None] * rng.normal(0, 5, 5)
    assert pair_loss(Tensor(response), y, reference, 0.5, False).item() != loss


def test_average_divides_by_each_responses_length():
    y = np.array([[IGNORE_INDEX, 1, 2, 0], [IGNORE_INDEX, IGNORE_INDEX, 3, IGNORE_INDEX]])
    logits = Tensor(np.random.default_rng(0).standard_normal((2, 4, 4)))
    total = response_logprobs(logits, y).data
    np.testing.assert_allclose(response_logprobs(logits, y, average=True).data, total / [3, 1])


def test_metrics_of_two_pairs():
    policy = Tensor(np.array([[-1.0, -3.0], [-2.0, -1.0]]))
    loss, metrics = dpo_loss(policy, np.full((2, 2), -2.0), beta=0.5)
    # rewards 0.5 (policy + 2) = [[0.5, -0.5], [0, 0.5]], margins 1 and -0.5
    want_loss = (np.log1p(np.exp(-1.0)) + np.log1p(np.exp(0.5))) / 2
    assert metrics == pytest.approx({"loss": want_loss, "chosen_reward": 0.25,
                                     "rejected_reward": 0.0, "margin": 0.25,
                                     "reward_accuracy": 0.5}, rel=1e-12)
    assert loss.item() == metrics["loss"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_loss_is_ln2_when_the_policy_is_the_reference(dtype):
    tok = char_tokenizer()
    policy = tiny_gpt(tok.vocab_size, dtype=dtype)
    task = DPOTask(copy.deepcopy(policy), tok, splits(PREFERENCES), 192, batch_size=4)
    loss, tokens = task.loss(policy.train(), None, np.random.default_rng(0))
    assert loss.dtype == dtype and loss.data == dtype(np.log(2))  # exactly (a mean of 4)
    assert tokens % 8 == 0  # 4 chosen and 4 rejected sequences of one padded length
    metrics = task.evaluate(policy, None)
    assert {k: metrics[k] for k in ("val_chosen_reward", "val_margin", "val_reward_accuracy",
                                    "train_rejected_reward")} == dict.fromkeys(
        ("val_chosen_reward", "val_margin", "val_reward_accuracy", "train_rejected_reward"), 0.0)
    assert task.evaluate_split(policy)["val_loss"] == pytest.approx(dtype(np.log(2)), rel=1e-15)


def test_training_raises_the_margin_and_leaves_the_reference_alone():
    tok = char_tokenizer()
    policy = tiny_gpt(tok.vocab_size, n_embd=32)
    reference = copy.deepcopy(policy)
    frozen = {k: v.copy() for k, v in reference.state_dict().items()}
    task = DPOTask(reference, tok, splits(PREFERENCES), 192, batch_size=6, beta=0.5)
    optimizer, rng = AdamW(policy.parameters(), lr=3e-3), np.random.default_rng(0)
    for _ in range(15):
        loss, _ = task.loss(policy.train(), None, rng)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = task.evaluate_split(policy, "val")
    assert set(after) == {f"val_{name}" for name in METRICS}
    assert after["val_loss"] < 0.6 and after["val_margin"] > 0.1
    assert after["val_reward_accuracy"] == 1.0
    assert all((reference.state_dict()[k] == v).all() for k, v in frozen.items())


def test_beta_must_be_positive_and_the_block_must_reach_the_answers():
    tok = char_tokenizer()
    model = tiny_gpt(tok.vocab_size)
    with pytest.raises(ValueError, match="beta"):
        DPOTask(model, tok, splits(PREFERENCES), 192, batch_size=2, beta=0.0)
    with pytest.raises(DataError, match="block_size 100 is too short"):
        DPOTask(model, tok, splits(PREFERENCES), 100, batch_size=2)
