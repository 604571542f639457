"""autograd/nn.py: every layer gradchecks with respect to its input and its parameters, and
Module's bookkeeping (naming, state dicts, modes) behaves as PyTorch users expect."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import Tensor, gradcheck, nn
from autograd.testing import check_layer, seeds, shapes, values


def normalised(x):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


@given(shape=shapes(max_dims=3), out_features=st.integers(1, 4), bias=st.booleans(), seed=seeds())
def test_linear(shape, out_features, bias, seed):
    def make(dtype, rng):
        return nn.Linear(shape[-1], out_features, bias=bias, rng=rng, dtype=dtype)

    def reference(layer, x):
        return x @ layer.weight.data + (layer.bias.data if bias else 0)

    assert check_layer(make, shape, reference=reference, seed=seed)
    assert make(np.float32, None).weight.shape == (shape[-1], out_features)  # (in, out): x @ W


@given(data=st.data())
def test_embedding(data):
    V, C = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    layer = nn.Embedding(V, C, rng=np.random.default_rng(0), dtype=np.float64)
    ids = np.array(data.draw(st.lists(st.integers(0, V - 1), min_size=2, max_size=8)))
    ids = ids.reshape(2, -1) if len(ids) % 2 == 0 else ids.reshape(1, -1)  # (B, T)
    np.testing.assert_array_equal(layer(ids).data, layer.weight.data[ids])
    assert gradcheck(layer, [ids], module=layer)


def randomised(layer, rng):
    """The layer with every parameter redrawn: the ones/zeros init could hide a wrong gradient."""
    for p in layer.parameters():
        p.data[...] = rng.uniform(-2, 2, p.shape)
    return layer


@given(shape=shapes(), bias=st.booleans(), seed=seeds())
def test_layer_norm(shape, bias, seed):
    x = np.random.default_rng(seed).uniform(-2, 2, shape)
    init = nn.LayerNorm(shape[-1], bias=bias, dtype=np.float64)
    np.testing.assert_allclose(init(Tensor(x)).data, normalised(x), atol=1e-12)  # ones, zeros

    def make(dtype, rng):
        return randomised(nn.LayerNorm(shape[-1], bias=bias, dtype=dtype), rng)

    def reference(layer, x):
        return normalised(x) * layer.weight.data + (layer.bias.data if bias else 0)

    assert check_layer(make, shape, reference=reference, seed=seed)


@given(shape=shapes(), seed=seeds())
def test_rms_norm(shape, seed):
    def make(dtype, rng):
        return randomised(nn.RMSNorm(shape[-1], dtype=dtype), rng)

    def reference(layer, x):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * layer.weight.data

    assert check_layer(make, shape, reference=reference, seed=seed)


@given(data=st.data())
def test_dropout_trains_and_evaluates(data):
    x = data.draw(shapes().flatmap(values))
    layer = nn.Dropout(0.5, rng=np.random.default_rng(0))
    assert layer.eval()(Tensor(x)).data is x  # identity in eval mode
    layer.train()
    out = layer(Tensor(x)).data
    assert set(np.unique(np.round(out / np.where(x == 0, 1, x), 9))) <= {0.0, 2.0}


class Block(nn.Module):
    def __init__(self, rng):
        self.norm = nn.LayerNorm(3)
        self.proj = nn.Linear(3, 2, rng=rng)


class Net(nn.Module):
    def __init__(self, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.wte = nn.Embedding(5, 3, rng=rng)
        self.h = nn.ModuleList([Block(rng), Block(rng)])
        self.head = nn.Linear(3, 5, bias=False, rng=rng)
        self.head.weight = self.wte.weight  # tied: listed once, under the first name
        self.drop = nn.Dropout(0.1)


def test_named_parameters_are_dotted_paths_in_order_with_tied_weights_once():
    names = [name for name, _ in Net().named_parameters()]
    assert names == ["wte.weight", "h.0.norm.weight", "h.0.norm.bias", "h.0.proj.weight",
                     "h.0.proj.bias", "h.1.norm.weight", "h.1.norm.bias", "h.1.proj.weight",
                     "h.1.proj.bias"]
    assert len(Net().parameters()) == len(names)


def test_seeded_initialisation_is_reproducible():
    a, b = Net(np.random.default_rng(42)).state_dict(), Net(np.random.default_rng(42)).state_dict()
    c = Net(np.random.default_rng(43)).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["wte.weight"], c["wte.weight"])


def test_state_dict_round_trip_copies_in_place():
    src, dst = Net(np.random.default_rng(1)), Net(np.random.default_rng(2))
    weight = dst.h[0].proj.weight
    dst.load_state_dict(src.state_dict())
    assert dst.h[0].proj.weight is weight  # same object: an optimizer holding it still works
    for name, value in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[name], value)
    sd = src.state_dict()
    sd["wte.weight"][:] = 0  # a copy, not a view of the live parameter
    assert src.wte.weight.data.any()


def test_load_state_dict_errors_name_the_keys_and_shapes():
    net, sd = Net(), Net().state_dict()
    del sd["h.1.proj.bias"]
    sd["extra.weight"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['h.1.proj.bias'\].*\['extra.weight'\]"):
        net.load_state_dict(sd)
    net.load_state_dict(sd, strict=False)  # non-strict: loads what matches
    sd = Net().state_dict()
    sd["h.0.proj.weight"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"h.0.proj.weight has shape \(2, 3\).*\(3, 2\)"):
        net.load_state_dict(sd)


def test_train_eval_reach_every_submodule_and_zero_grad_clears():
    net = Net()
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules()) and len(net.modules()) == 11
    out = net.h[0].proj(net.h[0].norm(net.wte(np.array([[1, 2]]))))
    out.sum().backward()
    assert net.wte.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_module_list_behaves_like_a_list():
    layers = nn.ModuleList()
    layers.append(nn.Linear(2, 2))
    layers.append(nn.Linear(2, 2))
    assert len(layers) == 2 and list(layers) == [layers[0], layers[1]]


def test_state_dict_lists_tied_weights_under_every_name_and_loads_them():
    net = Net()
    sd = net.state_dict()
    assert "head.weight" in sd and np.array_equal(sd["head.weight"], sd["wte.weight"])
    sd["wte.weight"] = sd["head.weight"] = np.full((5, 3), 2.0, np.float32)
    net.load_state_dict(sd)
    assert net.head.weight is net.wte.weight and (net.wte.weight.data == 2.0).all()


def test_named_modules_are_dotted_paths_parents_first():
    names = [name for name, _ in Net().named_modules()]
    assert names == ["", "wte", "h", "h.0", "h.0.norm", "h.0.proj", "h.1", "h.1.norm",
                     "h.1.proj", "head", "drop"]


class Stack(nn.Module):
    def __init__(self, layers):
        self.layers = layers


@pytest.mark.parametrize("held", [
    lambda: [nn.Linear(2, 2), nn.Linear(2, 2)],
    lambda: (nn.Parameter(np.zeros(2)),),
])
def test_a_plain_list_of_modules_or_parameters_is_refused(held):
    # its parameters would silently be missing from parameters(), state_dict(), the optimizer
    with pytest.raises(TypeError, match=r"Stack.layers is a plain (list|tuple).*nn.ModuleList"):
        Stack(held())


def test_a_list_filled_after_assignment_is_refused_when_parameters_are_collected():
    stack = Stack([])
    stack.layers.append(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="ModuleList"):
        stack.parameters()


def test_lists_of_other_things_and_module_lists_are_fine():
    stack = Stack([np.ones(2), 3])  # e.g. rotary tables: arrays, no parameters
    stack.blocks = nn.ModuleList([nn.Linear(2, 2)])
    assert [name for name, _ in stack.named_parameters()] == ["blocks.0.weight", "blocks.0.bias"]


def test_a_frozen_parameter_gets_no_gradient_but_stays_in_the_state_dict():
    layer = nn.Linear(3, 2, dtype=np.float64)
    assert layer.weight.requires_grad_(False) is layer.weight
    layer(Tensor(np.ones((1, 3)))).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is not None
    assert set(layer.state_dict()) == {"weight", "bias"}
    assert layer.weight.requires_grad_().requires_grad  # and it thaws again


# --- LoRA ---


def lora_layer(in_features, out_features, bias=True, rank=2, alpha=4.0, dtype=np.float32,
               rng=None, random_B=False):
    rng = np.random.default_rng(0) if rng is None else rng
    base = nn.Linear(in_features, out_features, bias=bias, rng=rng, dtype=dtype)
    layer = nn.LoRALinear(base, rank=rank, alpha=alpha, rng=rng)
    if random_B:  # B = 0 at init makes dA = 0: too easy a gradient to check
        layer.lora_B.data[...] = rng.uniform(-1, 1, layer.lora_B.shape)
    return layer


@given(shape=shapes(min_dims=1, max_dims=3, min_side=2), out_features=st.integers(2, 4),
       rank=st.integers(1, 2), bias=st.booleans(), frozen=st.booleans(), seed=seeds())
def test_lora_gradchecks_input_adapters_and_unfrozen_base(shape, out_features, rank, bias,
                                                          frozen, seed):
    def make(dtype, rng):
        layer = lora_layer(shape[-1], out_features, bias, rank, 3.0, dtype, rng, random_B=True)
        if not frozen:  # the base's gradient is right too (a frozen one is never checked)
            for p in layer.parameters():
                p.requires_grad_(True)
        return layer

    def reference(layer, x):
        W, A, B = layer.weight.data, layer.lora_A.data, layer.lora_B.data
        return x @ W + (layer.bias.data if bias else 0) + 3.0 / rank * (x @ A) @ B

    assert check_layer(make, shape, reference=reference, seed=seed)


@given(shape=shapes(min_dims=2, max_dims=3, min_side=2), bias=st.booleans(), seed=seeds())
def test_lora_starts_as_exactly_the_base_linear(shape, bias, seed):
    rng = np.random.default_rng(seed)
    base = nn.Linear(shape[-1], 3, bias=bias, rng=rng)
    x = Tensor(rng.standard_normal(shape).astype(np.float32))
    expected = base(x).data.copy()
    layer = nn.LoRALinear(base, rank=2, alpha=8.0, rng=rng)
    np.testing.assert_array_equal(layer(x).data, expected)
    assert layer.weight is base.weight and not base.weight.requires_grad  # shared, frozen


@given(bias=st.booleans(), seed=seeds())
def test_merged_layer_computes_the_same_function(bias, seed):
    layer = lora_layer(5, 4, bias, rank=3, dtype=np.float64, rng=np.random.default_rng(seed),
                       random_B=True)
    merged = layer.merge()
    x = Tensor(np.random.default_rng(seed + 1).standard_normal((2, 3, 5)))
    assert type(merged) is nn.Linear and all(p.requires_grad for p in merged.parameters())
    np.testing.assert_allclose(merged(x).data, layer(x).data, rtol=1e-12, atol=1e-12)
    assert not np.allclose(merged.weight.data, layer.weight.data)  # the update was folded in


def test_an_sgd_step_moves_only_the_adapters():
    layer = lora_layer(4, 3)
    before = {name: p.data.copy() for name, p in layer.named_parameters()}
    trainable = [p for p in layer.parameters() if p.requires_grad]
    assert trainable == [layer.lora_A, layer.lora_B]
    (layer(Tensor(np.ones((2, 4), np.float32))) ** 2).sum().backward()
    for p in layer.parameters():  # a careless SGD that walks every parameter with a gradient
        if p.grad is not None:
            p.data -= 0.1 * p.grad
    after = layer.state_dict()
    for name in ("weight", "bias", "lora_A"):  # frozen; A's first gradient is 0 since B = 0
        np.testing.assert_array_equal(after[name], before[name])
    assert not np.array_equal(after["lora_B"], before["lora_B"])


def test_lora_rank_must_fit_the_layer():
    with pytest.raises(ValueError, match=r"rank must be in \[1, 3\], got 4"):
        nn.LoRALinear(nn.Linear(5, 3), rank=4)


class Attention(nn.Module):
    def __init__(self, rng):
        self.c_attn = nn.Linear(4, 12, rng=rng)
        self.c_proj = nn.Linear(4, 4, rng=rng)


class AttnBlock(nn.Module):
    def __init__(self, rng):
        self.attn = Attention(rng)
        self.ln = nn.LayerNorm(4)
        self.c_proj = nn.Linear(4, 4, rng=rng)


def test_apply_lora_wraps_the_targets_and_freezes_everything_else():
    block = AttnBlock(np.random.default_rng(0))
    base_keys = set(block.state_dict())
    adapted = nn.apply_lora(block, targets=("c_attn", "attn.c_proj"), rank=2,
                            rng=np.random.default_rng(1))
    assert adapted == ["attn.c_attn", "attn.c_proj"]  # the block's own c_proj is not `attn.`
    assert isinstance(block.attn.c_attn, nn.LoRALinear) and type(block.c_proj) is nn.Linear
    assert set(block.state_dict()) == base_keys | {"attn.c_attn.lora_A", "attn.c_attn.lora_B",
                                                   "attn.c_proj.lora_A", "attn.c_proj.lora_B"}
    assert [n for n, p in block.named_parameters() if p.requires_grad] == [
        "attn.c_attn.lora_A", "attn.c_attn.lora_B", "attn.c_proj.lora_A", "attn.c_proj.lora_B"]
    assert sorted(nn.apply_lora(AttnBlock(None), targets="c_proj", rank=1)) == [
        "attn.c_proj", "c_proj"]
    with pytest.raises(ValueError, match=r"no Linear matches the targets \['c_atn'\]"):
        nn.apply_lora(AttnBlock(None), targets=("c_atn",))


def test_merge_lora_restores_the_base_layout_and_function():
    block = AttnBlock(np.random.default_rng(0))
    base_keys = set(block.state_dict())
    nn.apply_lora(block, targets=("c_attn",), rank=2, rng=np.random.default_rng(1))
    block.attn.c_attn.lora_B.data[...] = 0.5
    x = Tensor(np.ones((2, 4), np.float32))
    expected = block.attn.c_attn(x).data
    assert nn.merge_lora(block) == ["attn.c_attn"]
    assert set(block.state_dict()) == base_keys and type(block.attn.c_attn) is nn.Linear
    np.testing.assert_allclose(block.attn.c_attn(x).data, expected, rtol=1e-5)


def test_lora_state_dict_holds_only_adapters_and_round_trips():
    def adapted(seed):
        block = AttnBlock(np.random.default_rng(0))  # the same base model
        nn.apply_lora(block, targets=("c_attn",), rank=2, rng=np.random.default_rng(seed))
        return block

    src, dst = adapted(1), adapted(2)
    src.attn.c_attn.lora_B.data[...] = 0.25  # as if fine-tuned
    state = nn.lora_state_dict(src)
    assert sorted(state) == ["attn.c_attn.lora_A", "attn.c_attn.lora_B"]
    nn.load_lora_state_dict(dst, state)
    for name, value in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[name], value)
    with pytest.raises(KeyError, match=r"missing keys \['attn.c_attn.lora_B'\]"):
        nn.load_lora_state_dict(dst, {"attn.c_attn.lora_A": state["attn.c_attn.lora_A"]})
    wrong_rank = {**state, "attn.c_attn.lora_A": np.zeros((4, 3), np.float32)}
    with pytest.raises(ValueError, match=r"lora_A has shape \(4, 3\)"):
        nn.load_lora_state_dict(dst, wrong_rank)
