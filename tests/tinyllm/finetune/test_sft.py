"""tinyllm/finetune/sft.py: the masks are right at every boundary (prompt, response, end marker,
padding, truncation), the masked loss gradchecks, and the task's validation loss is the mean
over every response token of the split."""
import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import Tensor, gradcheck
from autograd import functional as F
from autograd.testing import values
from tinyllm.finetune.data import DataError, Example
from tinyllm.finetune.sft import IGNORE_INDEX, SFTTask, encode_examples, make_batch
from tinyllm.optim import AdamW

from .helpers import EXAMPLES, char_tokenizer, splits, tiny_gpt

PAD = 0
ids = st.lists(st.integers(1, 9), min_size=1, max_size=7)  # never PAD, so padding shows
pair_lists = st.lists(st.tuples(ids, ids), min_size=1, max_size=4)


@given(pairs=pair_lists, block_size=st.integers(1, 14), train_on_prompt=st.booleans())
def test_each_row_is_its_sequence_shifted_then_padding(pairs, block_size, train_on_prompt):
    x, y = make_batch(pairs, block_size, PAD, train_on_prompt)
    lengths = [min(len(p) + len(r), block_size + 1) - 1 for p, r in pairs]
    assert x.shape == y.shape == (len(pairs), max(lengths)) and x.shape[1] <= block_size
    for b, ((prompt, response), n) in enumerate(zip(pairs, lengths)):
        seq = prompt + response
        assert x[b, :n].tolist() == seq[:n]  # cut at the right end only
        assert (x[b, n:] == PAD).all() and (y[b, n:] == IGNORE_INDEX).all()
        counted = y[b, :n] != IGNORE_INDEX
        first = 0 if train_on_prompt else len(prompt) - 1
        assert counted.tolist() == [i >= first for i in range(n)]
        assert y[b, :n][counted].tolist() == seq[first + 1:n + 1]


@given(pairs=pair_lists)
def test_untruncated_rows_count_exactly_the_response_and_its_end(pairs):
    x, y = make_batch(pairs, 20, PAD)
    for b, (prompt, response) in enumerate(pairs):
        assert y[b][y[b] != IGNORE_INDEX].tolist() == response
        P = len(prompt)  # the first response token is predicted at the last prompt token
        assert x[b, P - 1] == prompt[-1] and y[b, P - 1] == response[0]


def test_ignore_index_is_cross_entropys_default():
    default = inspect.signature(F.cross_entropy).parameters["ignore_index"].default
    assert IGNORE_INDEX == default == -100


@given(pairs=pair_lists, V=st.integers(10, 12), data=st.data())
def test_the_masked_loss_is_the_mean_over_response_tokens_and_gradchecks(pairs, V, data):
    x, y = make_batch(pairs, 20, PAD)
    logits = data.draw(values(x.shape + (V,), -3, 3))  # (B, T, V)
    terms = []  # -log p(response token), straight from the pairs, not from y
    for b, (prompt, response) in enumerate(pairs):
        for k, token in enumerate(response):
            row = logits[b, len(prompt) - 1 + k]  # (V,)
            terms.append(np.log(np.exp(row).sum()) - row[token])
    loss = F.cross_entropy(Tensor(logits), y)
    np.testing.assert_allclose(loss.item(), np.mean(terms), rtol=1e-12)
    assert gradcheck(lambda t: F.cross_entropy(t, y), [logits])


def test_the_masked_loss_gradchecks_through_a_float64_gpt():
    tok = char_tokenizer()
    model = tiny_gpt(tok.vocab_size, block_size=16, dtype=np.float64, n_embd=8)
    x, y = make_batch([([3, 4, 5, 6], [7, 8, 9]), ([3, 4], [5, 6, 7, 8, 9, 10])], 16, PAD)
    assert gradcheck(lambda *params: model(x, y)[1], model.parameters())


def test_the_task_draws_reproducible_batches_of_training_examples():
    tok = char_tokenizer()
    task = SFTTask(tok, splits(EXAMPLES), block_size=192, batch_size=3)
    x1, y1 = task.batch(np.random.default_rng(5))
    x2, y2 = task.batch(np.random.default_rng(5))
    assert x1.shape[0] == 3 and (x1 == x2).all() and (y1 == y2).all()
    targets = {tok.decode(row[row != IGNORE_INDEX].tolist()) for row in y1}
    assert targets <= {e.output + "\n\n" for e in EXAMPLES}
    assert task.n_truncated == 0
    cut = SFTTask(tok, splits(EXAMPLES), block_size=160, batch_size=3)
    assert cut.n_truncated == 3  # the examples of 165, 172 and 180 tokens


def test_validation_loss_weights_every_response_token_alike():
    tok = char_tokenizer()
    model = tiny_gpt(tok.vocab_size, dtype=np.float64)
    task = SFTTask(tok, splits(EXAMPLES), block_size=192, batch_size=4)
    total, count = 0.0, 0
    for prompt, response in encode_examples(tok, EXAMPLES):  # one example at a time, no padding
        x = np.array([prompt + response[:-1]])  # (1, T)
        logits, _ = model(x)
        y = np.array([[IGNORE_INDEX] * (len(prompt) - 1) + response])
        total += F.cross_entropy(logits, y, reduction="sum").item()
        count += len(response)
    np.testing.assert_allclose(task.evaluate_split(model)["val_loss"], total / count, rtol=1e-10)
    on_prompt = SFTTask(tok, splits(EXAMPLES), 192, 4, train_on_prompt=True)
    same = task.evaluate_split(model)["val_loss"]
    assert on_prompt.evaluate_split(model, "test") == {"test_loss": same}


def test_training_lowers_the_response_loss():
    tok = char_tokenizer()
    model = tiny_gpt(tok.vocab_size, n_embd=32)
    task = SFTTask(tok, splits(EXAMPLES), block_size=192, batch_size=6)
    before = task.evaluate_split(model)["val_loss"]
    optimizer, rng = AdamW(model.parameters(), lr=1e-2), np.random.default_rng(0)
    model.train()
    for _ in range(40):
        loss, tokens = task.loss(model, None, rng)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert tokens % 6 == 0 and task.evaluate_split(model)["val_loss"] < 0.6 * before
    logged = task.evaluate(model, None)
    assert set(logged) == {"train_loss", "val_loss"} and logged["val_loss"] == pytest.approx(
        task.evaluate_split(model)["val_loss"])


def test_unencodable_text_and_a_block_too_short_are_data_errors():
    tok = char_tokenizer()
    with pytest.raises(DataError, match="example 1 .*'Ç' .* not in the vocabulary"):
        SFTTask(tok, splits([EXAMPLES[0], Example("Ça va?", "", "Yes.")] * 2), 192, 2)
    with pytest.raises(DataError, match="block_size 100 is too short"):
        SFTTask(tok, splits(EXAMPLES), block_size=100, batch_size=2)
