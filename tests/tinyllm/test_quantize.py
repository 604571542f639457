"""tinyllm/quantize.py: absmax int8 per output channel rounds each weight to within half a step,
uses the whole int8 range, and quantize_model leaves one consistent, barely changed model."""
import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import no_grad
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.quantize import (BLOCK_WEIGHTS, HEAD, dequantize_int8, int8_weights,
                              quantize_int8, quantize_model)


@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 30), N=st.integers(1, 30),
       axis=st.sampled_from([0, 1]), dtype=st.sampled_from([np.float32, np.float64]))
def test_each_weight_is_within_half_a_step_and_the_largest_is_127(seed, K, N, axis, dtype):
    w = (np.random.default_rng(seed).standard_normal((K, N)) * 3).astype(dtype)
    q, scale = quantize_int8(w, axis)
    assert q.dtype == np.int8 and scale.dtype == dtype and q.shape == w.shape
    assert scale.shape == (w.shape[1 - axis],)  # one scale per output channel
    step = np.expand_dims(scale, axis)  # (1, N) or (K, 1)
    assert (np.abs(dequantize_int8(q, scale, axis) - w) <= step / 2 * (1 + 1e-5)).all()
    np.testing.assert_array_equal(np.abs(q).max(axis=axis), 127)  # absmax maps to +-127


def test_a_channel_of_zeros_stays_zero():
    w = np.array([[0.0, 1.0], [0.0, -3.0]], np.float32)  # column 0 is all zeros
    q, scale = quantize_int8(w)
    assert scale[0] == 0 and (q[:, 0] == 0).all()
    np.testing.assert_allclose(dequantize_int8(q, scale), [[0.0, 1.0], [0.0, -3.0]], rtol=1e-2)


def gpt(n_layer=2, tie_weights=True, seed=0):
    config = GPTConfig(vocab_size=37, block_size=16, n_layer=n_layer, n_head=2, n_embd=32,
                       tie_weights=tie_weights)
    return GPT(config, np.random.default_rng(seed)).eval()


@pytest.mark.parametrize("tie_weights", [True, False])
def test_the_model_holds_the_dequantized_values_of_its_int8_copies(tie_weights):
    model = gpt(tie_weights=tie_weights)
    before = model.state_dict()
    assert int8_weights(model) == {}
    quantize_model(model)
    int8 = int8_weights(model)
    names = [f"transformer.h.{i}.{w}" for i in range(2) for w in BLOCK_WEIGHTS] + [HEAD]
    assert sorted(int8) == sorted(names)
    after = model.state_dict()
    for name, (q, scale) in int8.items():
        # (in, out), as a Linear's weight: the head's (V, C) is stored transposed
        weight = after[name].T if name == HEAD else after[name]
        assert q.shape == weight.shape and q.flags.c_contiguous
        np.testing.assert_array_equal(weight, dequantize_int8(q, scale))
        assert not np.array_equal(after[name], before[name])  # rounding did change them
    # the tied embedding is the head's array; an untied one, the biases, norms: untouched
    same_wte = np.array_equal(after["transformer.wte.weight"], before["transformer.wte.weight"])
    assert same_wte != tie_weights
    assert np.array_equal(after["transformer.h.0.ln_1.weight"],
                          before["transformer.h.0.ln_1.weight"])


def test_quantizing_twice_changes_nothing():
    model = quantize_model(gpt())
    once = {name: (q.copy(), s.copy()) for name, (q, s) in int8_weights(model).items()}
    weights = model.state_dict()
    quantize_model(model)  # the dequantized weights round to themselves
    for name, (q, s) in int8_weights(model).items():
        np.testing.assert_array_equal(q, once[name][0])
        np.testing.assert_allclose(s, once[name][1], rtol=1e-6)
    for name, w in model.state_dict().items():
        np.testing.assert_allclose(w, weights[name], rtol=1e-6, atol=1e-9)


def test_quantized_logits_stay_close_to_the_float_ones():
    model = gpt(n_layer=4, seed=1)
    idx = np.random.default_rng(2).integers(0, 37, (2, 16))  # (B, T)
    with no_grad():
        before = model(idx)[0].data  # (B, T, V)
        after = quantize_model(copy.deepcopy(model))(idx)[0].data
    error = np.abs(after - before).max() / np.abs(before).max()
    assert 0 < error < 0.02  # half a step in 127 per weight: ~1% of the logits' scale
