"""tinyllm/split_batch.py: the halves' loss and gradients are the whole batch's (dropout masks
included), checked against the unsplit model and against finite differences; the replica shares
the model's weights; the training loop splits on two threads and trains as it did unsplit."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograd import gradcheck, nn, no_grad
from autograd.kernels import threads
from tinyllm.config import GPTConfig, TrainConfig
from tinyllm.data.corpus import load_data
from tinyllm.model import GPT
from tinyllm.split_batch import IGNORED, SplitBatch
from tinyllm.train import Pretraining, new_run, train_step

TINY = GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.0)


def batch(seed, B, T, ignored):
    """(x, y) (B, T) token ids, a fraction `ignored` of the targets set to IGNORED."""
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 11, (B, T)), rng.integers(0, 11, (B, T))
    y[rng.random((B, T)) < ignored] = IGNORED
    return x, y


def gradients(model):
    grads = {name: p.grad for name, p in model.named_parameters()}
    model.zero_grad()
    return grads


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), B=st.integers(2, 7), T=st.integers(1, 6),
       ignored=st.sampled_from([0.0, 0.5, 1.0]), dropout=st.sampled_from([0.0, 0.3]))
def test_the_halves_give_the_whole_batchs_loss_and_gradients(seed, B, T, ignored, dropout):
    rng = np.random.default_rng(seed)  # the model's: it also draws the dropout masks
    model = GPT(GPTConfig(**{**TINY.__dict__, "dropout": dropout}), rng, dtype=np.float64)
    x, y = batch(seed, B, T, ignored)
    y[B // 2:] = IGNORED if seed % 3 == 0 else y[B // 2:]  # sometimes a half counts nothing
    start = rng.bit_generator.state
    _, whole = model(x, y)
    whole.backward()
    expected, end = gradients(model), rng.bit_generator.state
    rng.bit_generator.state = start
    _, split = SplitBatch(model, split=True)(x, y)
    (split * 3.0).backward()  # a gradient other than 1 reaches both halves
    assert rng.bit_generator.state == end  # the whole batch's draws, no more, no fewer
    np.testing.assert_allclose(split.item(), whole.item(), rtol=1e-12, atol=1e-12)
    for name, grad in gradients(model).items():
        np.testing.assert_allclose(grad, 3.0 * expected[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16), B=st.integers(2, 5))
def test_gradcheck_through_the_halves(seed, B):
    model = GPT(TINY, np.random.default_rng(seed), dtype=np.float64)
    split = SplitBatch(model, split=True)
    x, y = batch(seed, B, 4, 0.3)
    assert gradcheck(lambda: split(x, y)[1], [], module=model)  # every weight of the model


def test_the_replica_shares_the_weights_and_is_remade_when_they_are_replaced():
    model = GPT(TINY, np.random.default_rng(0))
    split = SplitBatch(model, split=True)
    x, y = batch(0, 4, 6, 0.0)
    replica = split.replica()
    for p, r in zip(model.parameters(), replica.parameters()):
        assert r.data is p.data and r is not p
    model.transformer.wte.weight.data *= 2.0  # an optimizer's in-place update reaches both
    assert split(x, y)[1].item() == pytest.approx(model(x, y)[1].item(), rel=1e-5)
    model.lm_head.weight = model.transformer.wte.weight  # still tied: the same array
    model.transformer.h[0].mlp.c_fc.weight.data = np.ones((8, 32), np.float32)  # replaced
    assert split.replica() is not replica
    assert split(x, y)[1].item() == pytest.approx(model(x, y)[1].item(), rel=1e-5)


def test_adapters_added_after_the_first_split_are_in_the_replica_too():
    model = GPT(TINY, np.random.default_rng(0), dtype=np.float64)
    split = SplitBatch(model, split=True)
    x, y = batch(0, 4, 6, 0.3)
    split(x, y)
    nn.apply_lora(model, rank=2, rng=np.random.default_rng(1))  # new parameters, frozen base
    model(x, y)[1].backward()
    expected = gradients(model)
    split(x, y)[1].backward()
    for name, grad in gradients(model).items():
        if expected[name] is None:
            assert grad is None, name  # a frozen weight gets no gradient from either half
        else:
            np.testing.assert_allclose(grad, expected[name], rtol=1e-10, atol=1e-12,
                                       err_msg=name)


def test_a_batch_whose_rows_split_mask_words_is_not_split():
    model = GPT(GPTConfig(**{**TINY.__dict__, "n_embd": 9, "n_head": 1}), np.random.default_rng(0))
    x, y = batch(0, 4, 3, 0.0)  # T C = 27 elements a row: a 64-bit word would straddle rows
    split = SplitBatch(model, split=True)
    assert split(x, y)[1].item() == model(x, y)[1].item() and split._replica is None


def test_what_it_does_not_split_is_the_models_own_call():
    model = GPT(TINY, np.random.default_rng(0))
    x, y = batch(0, 4, 6, 0.0)
    split = SplitBatch(model, split=True)
    np.testing.assert_array_equal(split(x)[0].data, model(x)[0].data)  # no targets: logits
    assert split(x[:1], y[:1])[1].item() == model(x[:1], y[:1])[1].item()  # one sequence
    never = SplitBatch(model, split=False)
    assert never(x, y)[1].item() == model(x, y)[1].item() and never._replica is None
    assert split.config is model.config  # the model's attributes, through the wrapper
    with threads.limited(1):  # one thread: nothing to split across
        auto = SplitBatch(model)
        auto(x, y)
        assert auto._replica is None


def test_under_no_grad_the_halves_build_no_graph():
    model = GPT(TINY, np.random.default_rng(0))
    x, y = batch(0, 4, 6, 0.0)
    with no_grad():
        loss = SplitBatch(model, split=True)(x, y)[1]
    assert not loss.requires_grad
    assert loss.item() == pytest.approx(model(x, y)[1].item(), rel=1e-5)


def test_a_batch_of_the_wrong_shape_gets_the_models_own_error():
    model = GPT(TINY, np.random.default_rng(0))
    with pytest.raises(ValueError, match="idx must be a"):
        SplitBatch(model, split=True)(np.arange(6), np.arange(6))


def test_an_error_in_the_replicas_half_reaches_the_caller():
    model = GPT(TINY, np.random.default_rng(0))
    x, y = batch(0, 4, 6, 0.0)
    x[3, 0] = 99  # outside the vocabulary, in the second half
    with pytest.raises(ValueError, match="token ids"):
        SplitBatch(model, split=True)(x, y)


def test_the_training_loop_trains_the_same_split_or_not(text_file, tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path), data=str(text_file), batch_size=5, max_iters=4,
                      sample_tokens=0)
    tokenizer, train_ids, val_ids = load_data(cfg)
    losses = {}
    for split in (False, True):
        run = new_run(TINY, cfg, tokenizer)
        run.split.split = split
        losses[split] = [train_step(run, Pretraining(train_ids, val_ids))[0] for _ in range(4)]
    assert run.split._replica is not None  # the second run did split
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)

