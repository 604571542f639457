"""tinyllm/model.py: config validation, the GPT-2 state-dict layout, whole-model gradchecks of
every variant, clear errors on bad input, and that a tiny model can overfit one batch."""
import itertools

import numpy as np
import pytest

from autograd import gradcheck
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.optim import AdamW

TINY = dict(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=8)
VARIANTS = list(itertools.product(["learned", "rope", "sinusoidal"], ["layernorm", "rmsnorm"],
                                  ["gelu", "swiglu"]))


@pytest.mark.parametrize("pos, norm, mlp", VARIANTS)
def test_whole_model_gradcheck(pos, norm, mlp):
    config = GPTConfig(**TINY, pos=pos, norm=norm, mlp=mlp)
    model = GPT(config, np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 7, (2, 4)), rng.integers(0, 7, (2, 4))
    assert gradcheck(lambda *params: model(idx, targets)[1], model.parameters())


@pytest.mark.parametrize("bad, message", [
    (dict(n_embd=10, n_head=4), "not divisible"),
    (dict(n_embd=12, n_head=4, pos="rope"), "even head size"),
    (dict(n_layer=0), "n_layer must be positive"),
    (dict(vocab_size=-1), "vocab_size must be positive"),
    (dict(norm="batchnorm"), "choose from"),
    (dict(dropout=1.0), "dropout"),
])
def test_invalid_configs_fail_at_construction(bad, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**TINY, **bad})


def test_state_dict_is_hugging_face_gpt2_layout():
    C, V, T = 8, 7, 5
    shapes = {name: v.shape for name, v in GPT(GPTConfig(**TINY)).state_dict().items()}
    expected = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C),
                "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,),
                "lm_head.weight": (V, C)}
    for i in range(2):
        h = f"transformer.h.{i}."
        expected.update({
            h + "ln_1.weight": (C,), h + "ln_1.bias": (C,), h + "ln_2.weight": (C,),
            h + "ln_2.bias": (C,), h + "attn.c_attn.weight": (C, 3 * C),
            h + "attn.c_attn.bias": (3 * C,), h + "attn.c_proj.weight": (C, C),
            h + "attn.c_proj.bias": (C,), h + "mlp.c_fc.weight": (C, 4 * C),
            h + "mlp.c_fc.bias": (4 * C,), h + "mlp.c_proj.weight": (4 * C, C),
            h + "mlp.c_proj.bias": (C,),
        })
    assert shapes == expected


def test_a_gpt2_style_state_dict_loads_and_ties():
    model = GPT(GPTConfig(**TINY), np.random.default_rng(0))
    state = GPT(GPTConfig(**TINY), np.random.default_rng(1)).state_dict()
    model.load_state_dict(state)
    assert model.lm_head.weight is model.transformer.wte.weight
    np.testing.assert_array_equal(model.transformer.wte.weight.data, state["lm_head.weight"])


def test_gpt2_initialisation_scales_residual_projections():
    model = GPT(GPTConfig(n_layer=8, n_embd=256, n_head=4), np.random.default_rng(0))
    sd = model.state_dict()
    assert abs(sd["transformer.h.0.attn.c_attn.weight"].std() - 0.02) < 1e-3
    assert abs(sd["transformer.h.0.mlp.c_proj.weight"].std() - 0.02 / 4) < 3e-4  # 1/sqrt(2*8)
    assert not sd["transformer.h.0.attn.c_attn.bias"].any()


def test_param_count_and_flops():
    config = GPTConfig(**TINY)
    C, L, V, T = 8, 2, 7, 5
    norms, attn = 2 * 2 * C, (C * 3 * C + 3 * C) + (C * C + C)
    per_block = norms + attn + (C * 4 * C + 4 * C) + (4 * C * C + C)
    expected = V * C + T * C + L * per_block + 2 * C  # lm_head tied: counted once
    model = GPT(config)
    assert model.num_params() == expected
    assert model.flops_per_token() == 6 * (expected - T * C) + 12 * L * C * T


def test_bad_inputs_raise_clear_errors():
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ValueError, match="exceeds block_size 5"):
        model(np.zeros((1, 6), dtype=np.int64))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 7\)"):
        model(np.array([[0, 7]]))
    with pytest.raises(ValueError, match=r"\(B, T\) integer array"):
        model(np.zeros(3))


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_a_tiny_model_overfits_one_batch(pos):
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=32, pos=pos)
    model = GPT(config, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 11, (4, 8)), rng.integers(0, 11, (4, 8))
    optimizer = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.05
