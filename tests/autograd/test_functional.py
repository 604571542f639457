"""autograd/functional.py: each layer op equals a direct NumPy formula and gradchecks, under
every kernel backend (the `backend` fixture runs each test once per backend)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import Tensor, functional as F, gradcheck, kernels
from autograd.testing import shapes, values


@pytest.fixture(params=kernels.BACKENDS, autouse=True)
def backend(request):
    previous = kernels.backend()
    kernels.use(request.param)
    yield request.param
    kernels.use(previous)


def check(op, reference, *inputs, rtol=1e-10):
    """op's forward equals `reference` on the arrays, and its gradients pass gradcheck."""
    out = op(*[Tensor(x) for x in inputs])
    np.testing.assert_allclose(out.data, reference(*inputs), rtol=rtol, atol=1e-12)
    assert gradcheck(op, inputs)


def softmax_formula(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@given(data=st.data())
def test_softmax_any_axis(data):
    shape = data.draw(shapes())
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(values(shape, -3, 3))
    check(lambda t: F.softmax(t, axis), lambda a: softmax_formula(a, axis), x)


@given(data=st.data())
def test_log_softmax_any_axis(data):
    shape = data.draw(shapes())
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(values(shape, -3, 3))
    check(lambda t: F.log_softmax(t, axis), lambda a: np.log(softmax_formula(a, axis)), x)


def test_softmax_of_huge_logits_is_finite():
    x = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]], dtype=np.float32)
    np.testing.assert_allclose(F.softmax(Tensor(x)).data, [[1, 0, 0], [0.5, 0.5, 0]])
    assert np.isfinite(F.log_softmax(Tensor(x)).data[:, :2]).all()


def cross_entropy_formula(logits, targets, ignore_index=-100):
    logp = np.log(softmax_formula(logits.reshape(-1, logits.shape[-1])))
    t = targets.reshape(-1)
    kept = [-logp[n, t[n]] for n in range(len(t)) if t[n] != ignore_index]
    return np.mean(kept) if kept else 0.0


@given(data=st.data())
def test_cross_entropy_with_ignored_targets(data):
    lead = data.draw(shapes(max_dims=2))
    V = data.draw(st.integers(1, 6))
    logits = data.draw(values(lead + (V,), -3, 3))
    choices = st.integers(0, V - 1) | st.just(-100)
    targets = np.array(data.draw(st.lists(choices, min_size=int(np.prod(lead)),
                                          max_size=int(np.prod(lead))))).reshape(lead)
    check(lambda t: F.cross_entropy(t, targets), lambda a: cross_entropy_formula(a, targets),
          logits)


def test_cross_entropy_all_ignored_is_zero_with_zero_gradient():
    logits = Tensor(np.ones((3, 4)), requires_grad=True)
    loss = F.cross_entropy(logits, np.full(3, -1), ignore_index=-1)
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def cross_entropy_losses(logits, targets, ignore_index=-100):
    """The per-position losses by the formula, shaped like targets, 0 where ignored."""
    logp = np.log(softmax_formula(logits.reshape(-1, logits.shape[-1])))  # (N, V)
    t = targets.reshape(-1)
    rows = [-logp[n, t[n]] if t[n] != ignore_index else 0.0 for n in range(len(t))]
    return np.array(rows).reshape(targets.shape)


@given(data=st.data(), reduction=st.sampled_from(["sum", "none"]))
def test_cross_entropy_sum_and_none_with_random_masks(data, reduction):
    lead = data.draw(shapes(max_dims=2))
    V = data.draw(st.integers(1, 6))
    logits = data.draw(values(lead + (V,), -3, 3))
    keep = data.draw(values(lead, 0, 1)) < data.draw(st.floats(0, 1))  # any share, even none
    targets = np.where(keep, np.arange(keep.size).reshape(lead) % V, -1)
    reduce = (lambda a: a.sum()) if reduction == "sum" else (lambda a: a)
    check(lambda t: F.cross_entropy(t, targets, ignore_index=-1, reduction=reduction),
          lambda a: reduce(cross_entropy_losses(a, targets, -1)), logits)


def test_cross_entropy_none_keeps_the_targets_shape_and_mean_is_its_average():
    logits = np.random.default_rng(0).standard_normal((2, 3, 5))
    targets = np.array([[1, -100, 4], [-100, -100, 0]])
    losses = F.cross_entropy(Tensor(logits), targets, reduction="none").data
    assert losses.shape == (2, 3) and (losses[targets == -100] == 0).all()
    mean = F.cross_entropy(Tensor(logits), targets).item()
    np.testing.assert_allclose(mean, losses.sum() / 3, rtol=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(Tensor(logits), targets, reduction="average")


def test_cross_entropy_of_huge_logits_is_finite():
    logits = Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 2]))
    loss.backward()
    np.testing.assert_allclose(loss.item(), (2e4 + np.log(2)) / 2, rtol=1e-5)
    assert np.isfinite(logits.grad).all()


def test_cross_entropy_rejects_bad_targets():
    logits = Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match="outside the 3 classes"):
        F.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(logits, np.array([0.0, 1.0]))


@given(data=st.data(), with_bias=st.booleans())
def test_layer_norm(data, with_bias):
    shape = data.draw(shapes())
    C = shape[-1]
    x, w, b = data.draw(values(shape)), data.draw(values(C)), data.draw(values(C))

    def formula(x, w, b=None):
        xhat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
        return xhat * w + (0 if b is None else b)

    if with_bias:
        check(lambda x, w, b: F.layer_norm(x, w, b), formula, x, w, b)
    else:
        check(lambda x, w: F.layer_norm(x, w, None), formula, x, w)


@given(data=st.data())
def test_rms_norm(data):
    shape = data.draw(shapes())
    x, w = data.draw(values(shape)), data.draw(values(shape[-1]))
    check(F.rms_norm, lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w, x, w)


@given(data=st.data())
def test_gelu(data):
    x = data.draw(shapes().flatmap(lambda s: values(s, -5, 5)))
    check(F.gelu, lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3))),
          x)


@given(data=st.data())
def test_silu(data):
    x = data.draw(shapes().flatmap(lambda s: values(s, -6, 6)))
    check(F.silu, lambda a: a / (1 + np.exp(-a)), x)


@given(data=st.data(), p=st.sampled_from([0.1, 0.5, 0.9]))
def test_dropout_gradient_uses_the_same_mask(data, p):
    x = data.draw(shapes().flatmap(values))
    keep = F.dropout(Tensor(np.ones(x.shape)), p, True, np.random.default_rng(7)).data != 0
    # a fresh generator with the same seed per evaluation: the same mask every time
    check(lambda t: F.dropout(t, p, True, np.random.default_rng(7)), lambda a: a * keep / (1 - p),
          x)


def test_dropout_keeps_the_expected_value_and_is_identity_when_off():
    x = Tensor(np.ones(100_000))
    out = F.dropout(x, 0.3, True, np.random.default_rng(0)).data
    assert abs(out.mean() - 1.0) < 0.02 and abs((out == 0).mean() - 0.3) < 0.01
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="probability"):
        F.dropout(x, 1.0)


@given(data=st.data())
def test_embedding_with_repeated_ids(data):
    V, C = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    ids = np.array(data.draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=10)))
    ids = ids.reshape(1, -1)  # (B=1, T)
    check(lambda w: F.embedding(ids, w), lambda w: w[ids], data.draw(values((V, C))))


def test_embedding_rejects_out_of_range_ids():
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        F.embedding(np.array([[0, 3]]), Tensor(np.zeros((3, 2))))


def attention_formula(q, k, v, causal):
    """Query by query: softmax over the keys this query may see, times v."""
    Tq, Tk, D = q.shape[2], k.shape[2], q.shape[3]
    out = np.zeros_like(q)
    for i in range(Tq):
        visible = (Tk - Tq + i + 1) if causal else Tk
        s = q[:, :, i : i + 1] @ k[:, :, :visible].swapaxes(-1, -2) / np.sqrt(D)  # (B,H,1,vis)
        out[:, :, i : i + 1] = softmax_formula(s) @ v[:, :, :visible]
    return out


@given(data=st.data(), causal=st.booleans())
def test_scaled_dot_product_attention(data, causal):
    B, H, D = (data.draw(st.integers(1, 2)) for _ in range(3))
    Tk = data.draw(st.integers(1, 5))
    Tq = data.draw(st.integers(1, Tk))  # Tq < Tk is a KV-cached step: queries are the last Tq
    q = data.draw(values((B, H, Tq, D)))
    k, v = data.draw(values((B, H, Tk, D))), data.draw(values((B, H, Tk, D)))
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, causal),
          lambda q, k, v: attention_formula(q, k, v, causal), q, k, v)


@given(data=st.data())
def test_causal_self_attention_from_packed_qkv(data):
    B, T, H, hs = (data.draw(st.integers(1, 3)) for _ in range(4))
    qkv = data.draw(values((B, T, 3 * H * hs)))

    def split_heads(packed):  # (B, T, 3C) -> q, k, v (B, H, T, hs), as the model once did
        heads = packed.reshape(B, T, 3, H, hs).transpose(2, 0, 3, 1, 4)
        return heads[0], heads[1], heads[2]

    def formula(packed):
        out = attention_formula(*split_heads(packed), causal=True)  # (B, H, T, hs)
        return out.transpose(0, 2, 1, 3).reshape(B, T, H * hs)

    check(lambda t: F.causal_self_attention(t, H), formula, qkv)


def test_attention_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="3 \\* n_head"):
        F.causal_self_attention(Tensor(np.zeros((1, 2, 12))), n_head=3)
    q, k = np.zeros((1, 1, 3, 2)), np.zeros((1, 1, 2, 2))
    with pytest.raises(ValueError, match="Tq <= Tk"):
        F.scaled_dot_product_attention(q, k, k)
    with pytest.raises(ValueError, match="attention needs"):
        F.scaled_dot_product_attention(q, np.zeros((1, 1, 3, 4)), np.zeros((1, 1, 3, 4)))


@given(data=st.data())
def test_rotary(data):
    lead = data.draw(shapes(min_dims=0, max_dims=2, max_side=3))
    T, half = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3))
    angles = data.draw(values((T, half), -3, 3))
    cos, sin = np.cos(angles), np.sin(angles)

    def formula(x):  # rotate the complex numbers x1 + i x2 by e^(i angle)
        z = (x[..., :half] + 1j * x[..., half:]) * np.exp(1j * angles)
        return np.concatenate([z.real, z.imag], axis=-1)

    check(lambda t: F.rotary(t, cos, sin), formula, data.draw(values(lead + (T, 2 * half))))
