"""Every primitive op in autograd/ops.py: its forward equals the NumPy formula and its backward
agrees with central finite differences (float64) over random shapes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import Tensor, ops
from autograd.testing import axes, broadcastable_pairs, check_gradients, shapes, values


def check_op(op, reference, *inputs):
    """One helper, many one-line tests: forward == reference, and gradcheck passes."""
    assert check_gradients(op, *inputs, reference=reference)


UNARY = {
    "neg": (ops.neg, np.negative, (-2, 2)),
    "exp": (ops.exp, np.exp, (-2, 2)),
    "log": (ops.log, np.log, (0.5, 3)),
    "sqrt": (ops.sqrt, np.sqrt, (0.5, 3)),
    "tanh": (ops.tanh, np.tanh, (-2, 2)),
    "sigmoid": (ops.sigmoid, lambda a: 1 / (1 + np.exp(-a)), (-6, 6)),
    "relu": (ops.relu, lambda x: np.maximum(x, 0), (-2, 2)),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary(name, data):
    op, reference, (low, high) = UNARY[name]
    check_op(op, reference, data.draw(shapes().flatmap(lambda s: values(s, low, high))))


BINARY = {  # name: (op, reference, bounds of a, bounds of b)
    "add": (ops.add, np.add, (-2, 2), (-2, 2)),
    "sub": (ops.sub, np.subtract, (-2, 2), (-2, 2)),
    "mul": (ops.mul, np.multiply, (-2, 2), (-2, 2)),
    "div": (ops.div, np.divide, (-2, 2), (0.5, 2)),
    "pow": (ops.pow, np.power, (0.5, 2), (-2, 2)),
}


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_broadcasting(name, data):
    op, reference, a_bounds, b_bounds = BINARY[name]
    a_shape, b_shape = data.draw(broadcastable_pairs())
    a, b = data.draw(values(a_shape, *a_bounds)), data.draw(values(b_shape, *b_bounds))
    check_op(op, reference, a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_finite_and_accurate_for_large_inputs(dtype):
    x = Tensor(np.array([-1000.0, -80.0, -30.0, 0.0, 30.0, 1000.0], dtype), requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        y = x.sigmoid()
        y.sum().backward()
    assert y.dtype == dtype and x.grad.dtype == dtype
    # sigmoid(-t) = e^-t / (1 + e^-t) ~ e^-t, kept to full relative precision (not rounded to 0)
    tiny = np.exp(np.array([-80.0, -30.0])) / (1 + np.exp(np.array([-80.0, -30.0])))
    np.testing.assert_allclose(y.data[1:3], tiny, rtol=1e-6)
    assert y.data[0] == 0.0 and y.data[-1] == 1.0 and y.data[3] == 0.5
    # dy/dx = y (1 - y): symmetric, and e^-t in both tails
    np.testing.assert_allclose(x.grad[[1, 2, 4]], [tiny[0], tiny[1], tiny[1]], rtol=1e-6)
    assert x.grad[0] == x.grad[-1] == 0.0 and x.grad[3] == 0.25


def test_pow_with_a_number_exponent_allows_negative_bases():
    x = np.array([-1.5, 0.5, 2.0])
    check_op(lambda t: t**3, lambda a: a**3, x)


REDUCTIONS = {"sum": (ops.sum, np.sum), "mean": (ops.mean, np.mean), "max": (ops.max, np.max)}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), keepdims=st.booleans())
def test_reductions(name, data, keepdims):
    op, reference = REDUCTIONS[name]
    shape = data.draw(shapes())
    axis = data.draw(axes(len(shape)))
    check_op(
        lambda t: op(t, axis, keepdims),
        lambda a: reference(a, axis=axis, keepdims=keepdims),
        data.draw(values(shape)),
    )


def test_max_splits_the_gradient_between_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), requires_grad=True)
    ops.max(x, axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [1, 0, 0]])


@given(data=st.data())
def test_reshape(data):
    shape = data.draw(shapes())
    x = data.draw(values(shape))
    target = data.draw(st.sampled_from([(x.size,), shape[::-1], (1,) + shape]))
    check_op(lambda t: ops.reshape(t, target), lambda a: a.reshape(target), x)


@given(data=st.data())
def test_transpose(data):
    shape = data.draw(shapes())
    perm = data.draw(st.permutations(range(len(shape))))
    check_op(lambda t: ops.transpose(t, perm), lambda a: a.transpose(perm),
             data.draw(values(shape)))


@given(data=st.data())
def test_getitem_slices(data):
    shape = data.draw(shapes())
    index = tuple(
        slice(data.draw(st.integers(0, n - 1)), data.draw(st.integers(1, n)),
              data.draw(st.sampled_from([1, 2])))
        for n in shape
    )
    check_op(lambda t: t[index], lambda a: a[index], data.draw(values(shape)))


@given(data=st.data())
def test_getitem_integer_arrays_with_repeats(data):
    rows, cols = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    ids = np.array(data.draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=12)))
    check_op(lambda t: t[ids], lambda a: a[ids], data.draw(values((rows, cols))))


def test_getitem_repeated_index_accumulates_every_occurrence():
    w = Tensor(np.zeros((3, 2)), requires_grad=True)
    w[np.array([2, 0, 2, 2])].sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 1], [0, 0], [3, 3]])


@given(data=st.data(), n=st.integers(1, 3))
def test_concatenate(data, n):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for _ in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(data.draw(values(tuple(s))))
    check_op(lambda *ts: ops.concatenate(ts, axis), lambda *a: np.concatenate(a, axis), *parts)


@given(data=st.data(), n=st.integers(1, 3))
def test_stack(data, n):
    shape = data.draw(shapes())
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts = [data.draw(values(shape)) for _ in range(n)]
    check_op(lambda *ts: ops.stack(ts, axis), lambda *a: np.stack(a, axis), *parts)


@given(data=st.data())
def test_split(data):
    shape = list(data.draw(shapes()))
    axis = data.draw(st.integers(0, len(shape) - 1))
    sections = data.draw(st.integers(1, 3))
    shape[axis] *= sections
    x = data.draw(values(tuple(shape)))
    # weight the pieces differently so a gradient sent to the wrong piece is caught
    def weighted(pieces):
        return [p * (i + 1.0) for i, p in enumerate(pieces)]

    check_op(
        lambda t: ops.concatenate(weighted(ops.split(t, sections, axis)), axis),
        lambda a: np.concatenate(weighted(np.split(a, sections, axis)), axis),
        x,
    )


def test_split_at_indices_and_bad_sections():
    parts = ops.split(Tensor(np.arange(5.0)), [1, 3])
    assert [p.data.tolist() for p in parts] == [[0.0], [1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="equal parts"):
        ops.split(Tensor(np.arange(5.0)), 2)


@given(data=st.data())
def test_where_broadcasting(data):
    a_shape, b_shape = data.draw(broadcastable_pairs())
    cond = np.broadcast_to(data.draw(values(a_shape)) > 0, np.broadcast_shapes(a_shape, b_shape))
    check_op(lambda a, b: ops.where(cond, a, b), lambda a, b: np.where(cond, a, b),
             data.draw(values(a_shape)), data.draw(values(b_shape)))


@given(data=st.data())
def test_masked_fill(data):
    shape = data.draw(shapes())
    mask = data.draw(values(shape)) > 0.5
    check_op(lambda t: t.masked_fill(mask, -7.0), lambda a: np.where(mask, -7.0, a),
             data.draw(values(shape)))


@given(data=st.data())
def test_matmul_batched_broadcasting(data):
    batch_a, batch_b = data.draw(broadcastable_pairs(max_dims=2, max_side=3))
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    a = data.draw(values(batch_a + (m, k)))
    b = data.draw(values(batch_b + (k, n)))
    check_op(ops.matmul, np.matmul, a, b)


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3,), (3,)), ((3,), (2, 3, 4)), ((2, 4, 3), (3,)), ((2, 3, 4, 3), (3, 5))],  # last: flat path
)
def test_matmul_with_vectors_and_linear_layer_shapes(a_shape, b_shape):
    rng = np.random.default_rng(0)
    check_op(ops.matmul, np.matmul, rng.standard_normal(a_shape), rng.standard_normal(b_shape))


@given(data=st.data(), bias=st.booleans())
def test_linear(data, bias):
    lead = data.draw(shapes(min_dims=1, max_dims=3, max_side=3))
    K, N = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    x, w, b = data.draw(values(lead + (K,))), data.draw(values((K, N))), data.draw(values(N))
    if bias:
        check_op(ops.linear, lambda x, w, b: x @ w + b, x, w, b)
    else:
        check_op(ops.linear, np.matmul, x, w)


@given(data=st.data())
def test_integer_array_index_of_any_shape_sums_repeats(data):
    rows, cols = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    ids = np.array(data.draw(st.lists(st.integers(-rows, rows - 1), min_size=0, max_size=12)),
                   dtype=np.int64)  # negative ids too: -1 and rows-1 are the same row
    ids = ids.reshape(2, -1) if ids.size % 2 == 0 else ids  # (B, T) like a batch of token ids
    x = Tensor(np.zeros((rows, cols)), requires_grad=True)
    dout = data.draw(values(ids.shape + (cols,)))
    x[ids].backward(dout)
    expected = np.zeros((rows, cols))
    np.add.at(expected, ids, dout)  # the slow, obviously right way
    np.testing.assert_allclose(x.grad, expected, atol=1e-12)
