"""LoRA on a whole GPT (autograd/nn.py's apply_lora): the adapted model starts unchanged, keeps
the base state-dict names, gradchecks through every adapter, fine-tunes only the adapters, and
merges back to the same function."""
import numpy as np

from autograd import gradcheck, nn
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.optim import AdamW, param_groups

TINY = dict(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=8)
TARGETS = ("c_attn", "attn.c_proj")


def batch(seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 7, (2, 4)), rng.integers(0, 7, (2, 4))


def test_an_adapted_gpt_starts_unchanged_and_keeps_the_base_names():
    model = GPT(GPTConfig(**TINY), np.random.default_rng(0))
    idx, _ = batch()
    logits, _ = model(idx)
    base = model.state_dict()
    adapted = nn.apply_lora(model, TARGETS, rank=2, rng=np.random.default_rng(2))
    assert adapted == [f"transformer.h.{i}.attn.{name}" for i in range(2)
                       for name in ("c_attn", "c_proj")]
    np.testing.assert_array_equal(model(idx)[0].data, logits.data)  # B = 0: exactly the base
    state = model.state_dict()
    lora_keys = {f"{name}.lora_{m}" for name in adapted for m in "AB"}
    assert set(state) == set(base) | lora_keys
    assert all(np.array_equal(state[k], base[k]) for k in base)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == lora_keys


def test_the_adapters_gradcheck_through_the_whole_model():
    model = GPT(GPTConfig(**TINY, pos="rope", mlp="swiglu"), np.random.default_rng(0),
                dtype=np.float64)
    nn.apply_lora(model, TARGETS, rank=2, rng=np.random.default_rng(2))
    rng = np.random.default_rng(3)
    for name, p in model.named_parameters():
        if name.endswith("lora_B"):  # B = 0 would make every dA zero: too easy to pass
            p.data[...] = rng.normal(0.0, 0.1, p.shape)
    idx, targets = batch()
    assert gradcheck(lambda: model(idx, targets)[1], [], module=model)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_fine_tuning_moves_only_the_adapters_and_merges_back():
    model = GPT(GPTConfig(**TINY), np.random.default_rng(0))
    nn.apply_lora(model, TARGETS, rank=2, rng=np.random.default_rng(2))
    base = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    # every parameter, frozen ones too, with weight decay: the frozen must still not move
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-2)
    idx, targets = batch()
    first = model(idx, targets)[1].item()
    for _ in range(30):
        _, loss = model(idx, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < first - 0.05  # 1.95 -> 1.85: the frozen head (std 0.02) limits it
    state = model.state_dict()
    assert all(np.array_equal(state[n], value) for n, value in base.items())
    logits = model(idx)[0].data
    nn.merge_lora(model)
    assert set(model.state_dict()) == set(GPT(GPTConfig(**TINY)).state_dict())
    np.testing.assert_allclose(model(idx)[0].data, logits, rtol=1e-4, atol=1e-5)
