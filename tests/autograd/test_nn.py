"""autograd/nn.py: every layer gradchecks with respect to its input and its parameters, and
Module's bookkeeping (naming, state dicts, modes) behaves as PyTorch users expect."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import Tensor, gradcheck, nn
from tests.strategies import shapes, values

F64 = dict(dtype=np.float64)


def check_layer(layer, x):
    """Gradcheck a float64 layer with respect to its input and every parameter, in place."""
    assert gradcheck(lambda x, *params: layer(x), [x, *layer.parameters()])


@given(data=st.data(), bias=st.booleans())
def test_linear(data, bias):
    shape = data.draw(shapes(max_dims=3))
    out_features = data.draw(st.integers(1, 4))
    layer = nn.Linear(shape[-1], out_features, bias=bias, rng=np.random.default_rng(0), **F64)
    x = data.draw(values(shape))
    expected = x @ layer.weight.data + (layer.bias.data if bias else 0)
    np.testing.assert_allclose(layer(Tensor(x)).data, expected)
    assert layer.weight.shape == (shape[-1], out_features)  # (in, out): x @ W reads naturally
    check_layer(layer, x)


@given(data=st.data())
def test_embedding(data):
    V, C = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    layer = nn.Embedding(V, C, rng=np.random.default_rng(0), **F64)
    ids = np.array(data.draw(st.lists(st.integers(0, V - 1), min_size=2, max_size=8)))
    ids = ids.reshape(2, -1) if len(ids) % 2 == 0 else ids.reshape(1, -1)  # (B, T)
    np.testing.assert_array_equal(layer(ids).data, layer.weight.data[ids])
    assert gradcheck(lambda w: layer(ids), [layer.weight])


@given(data=st.data(), bias=st.booleans())
def test_layer_norm(data, bias):
    shape = data.draw(shapes())
    layer = nn.LayerNorm(shape[-1], bias=bias, **F64)
    x = data.draw(values(shape))
    xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(layer(Tensor(x)).data, xhat, atol=1e-12)  # ones and zeros init
    layer.weight.data[:] = data.draw(values(shape[-1]))  # move away from the init to check
    check_layer(layer, x)


@given(data=st.data())
def test_rms_norm(data):
    shape = data.draw(shapes())
    layer = nn.RMSNorm(shape[-1], **F64)
    x = data.draw(values(shape))
    np.testing.assert_allclose(layer(Tensor(x)).data, x / np.sqrt((x * x).mean(-1, keepdims=True)
                                                                  + 1e-5))
    layer.weight.data[:] = data.draw(values(shape[-1]))
    check_layer(layer, x)


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
