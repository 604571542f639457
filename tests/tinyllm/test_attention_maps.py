"""tinyllm/attention_maps.py: the forward pass spelled out reproduces the model's logits for
every variant, and its attention probabilities are causal distributions."""
import itertools

import numpy as np
import pytest

from tinyllm.attention_maps import attention_probabilities, manual_forward
from tinyllm.config import GPTConfig
from tinyllm.model import GPT

VARIANTS = list(itertools.product(["learned", "rope", "sinusoidal"], ["layernorm", "rmsnorm"],
                                  ["gelu", "swiglu"]))


def sharp_gpt(dtype, pos="learned", norm="layernorm", mlp="gelu", seed=0):
    """A 3-layer GPT with weights scaled up, so attention is far from uniform (at GPT-2's
    initialisation every head attends almost evenly, which would hide a wrong mask)."""
    config = GPTConfig(vocab_size=13, block_size=10, n_layer=3, n_head=2, n_embd=16, pos=pos,
                       norm=norm, mlp=mlp)
    model = GPT(config, np.random.default_rng(seed), dtype=dtype)
    for p in model.parameters():
        p.data *= 3.0
    return model.eval()


@pytest.mark.parametrize("pos, norm, mlp", VARIANTS)
def test_continuing_the_manual_forward_gives_the_models_logits(pos, norm, mlp):
    idx = np.random.default_rng(1).integers(0, 13, 9)  # (T,)
    for dtype, tolerance in ((np.float64, 1e-10), (np.float32, 1e-5)):
        model = sharp_gpt(dtype, pos, norm, mlp)
        probs, logits = manual_forward(model, idx)
        expected = model(idx[None])[0].data[0]  # (T, V)
        assert probs.shape == (3, 2, 9, 9) and logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("pos", ["learned", "rope", "sinusoidal"])
def test_probabilities_are_causal_distributions(pos):
    probs = attention_probabilities(sharp_gpt(np.float64, pos), [3, 1, 4, 1, 5, 9, 2, 6])
    T = probs.shape[-1]
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-12)
    assert (probs >= 0).all()
    assert not probs[..., np.triu_indices(T, k=1)[0], np.triu_indices(T, k=1)[1]].any()
    assert probs.max() > 0.9  # the sharpened heads really do pick out single tokens


def test_a_head_without_queries_attends_evenly_to_the_past():
    model = sharp_gpt(np.float64)
    C = model.config.n_embd
    attn = model.transformer.h[1].attn
    attn.c_attn.weight.data[:, :C] = 0.0  # every query vector is zero, so every score is 0
    attn.c_attn.bias.data[:C] = 0.0
    probs = attention_probabilities(model, [2, 7, 1, 8, 2])
    T = 5
    uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]  # row t: 1/(t+1) each
    np.testing.assert_allclose(probs[1], np.broadcast_to(uniform, (2, T, T)), atol=1e-12)
    assert not np.allclose(probs[0], uniform)  # the other layers are untouched


def test_one_token_attends_only_to_itself():
    np.testing.assert_array_equal(attention_probabilities(sharp_gpt(np.float32), [4]),
                                  np.ones((3, 2, 1, 1)))


@pytest.mark.parametrize("idx, message", [
    (list(range(11)), "exceeds block_size"),
    ([0, 13], "must lie in"),
    ([0.5, 1.0], "integer array"),
])
def test_bad_prompts_are_refused_clearly(idx, message):
    with pytest.raises(ValueError, match=message):
        attention_probabilities(sharp_gpt(np.float32), idx)
