"""The graph machinery of autograd/tensor.py: backward order, accumulation, unbroadcast,
no_grad, dtypes, and the operator methods routing to ops."""
import numpy as np
import pytest
from hypothesis import given

from autograd import Tensor, no_grad
from autograd.tensor import unbroadcast
from autograd.testing import broadcastable_pairs, values


def leaf(x):
    return Tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


def test_a_tensor_used_twice_gets_both_gradients():
    x = leaf([3.0])
    (x * x + x).sum().backward()  # d(x^2 + x)/dx = 2x + 1
    np.testing.assert_array_equal(x.grad, [7.0])


def test_diamond_graph_runs_each_node_after_all_its_users():
    x = leaf(2.0)
    a = x * 3.0
    b = a.exp() + a * a  # a feeds two branches that meet again
    b.backward()
    np.testing.assert_allclose(x.grad, 3 * (np.exp(6.0) + 2 * 6.0))


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 4.0])


def test_a_chain_of_20000_ops_needs_no_recursion():
    x = leaf(1.0)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**20_000)


def test_intermediate_gradients_are_freed_leaf_gradients_kept():
    x = leaf([1.0])
    hidden = x * 2.0
    (hidden * 3.0).sum().backward()
    assert hidden.grad is None
    np.testing.assert_array_equal(x.grad, [6.0])


def test_no_grad_builds_no_graph():
    x = leaf([1.0, 2.0])
    with no_grad():
        y = (x * 2.0).exp().sum()
    assert not y.requires_grad and y._parents == () and y._backward is None
    z = x * 2.0  # and the switch comes back afterwards
    assert z.requires_grad


def test_no_grad_as_a_decorator_with_and_without_parentheses():
    @no_grad
    def double(t):
        """Twice t."""
        return t * 2.0

    assert not double(leaf([1.0])).requires_grad
    assert double.__name__ == "double" and double.__doc__ == "Twice t."
    assert not no_grad()(lambda t: t * 2.0)(leaf([1.0])).requires_grad
    assert (leaf([1.0]) * 2.0).requires_grad  # switched back on after each call


def test_no_grad_restores_the_switch_after_an_error_and_when_nested():
    @no_grad
    def fail(t):
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError):
        fail(leaf([1.0]))
    with no_grad():
        with no_grad():
            pass
        assert not (leaf([1.0]) * 2.0).requires_grad  # the inner block left it off
    assert (leaf([1.0]) * 2.0).requires_grad


def test_constants_are_not_graph_parents():
    x = leaf([1.0])
    y = x * Tensor(np.array([5.0]))
    assert y._parents == (x,)


def test_detach_cuts_the_graph():
    x = leaf([1.0])
    y = (x * 2.0).detach() * x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0])  # only the non-detached path


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match="needs a grad"):
        (x * 2.0).backward()
    (x * 2.0).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 20.0])


@given(data=broadcastable_pairs().flatmap(lambda p: values(p[1]).map(lambda v: (p, v))))
def test_unbroadcast_sums_the_copies_made_by_broadcasting(data):
    (small, big), _ = data
    out_shape = np.broadcast_shapes(small, big)
    grad = np.random.default_rng(0).standard_normal(out_shape)
    reduced = unbroadcast(grad, small)
    assert reduced.shape == small
    # <grad, broadcast(v)> == <unbroadcast(grad), v> for every v: unbroadcast is the adjoint
    v = np.random.default_rng(1).standard_normal(small)
    np.testing.assert_allclose((grad * np.broadcast_to(v, out_shape)).sum(), (reduced * v).sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_through_ops_with_python_numbers(dtype):
    x = Tensor(np.ones((2, 3), dtype=dtype), requires_grad=True)
    y = ((2.0 * x + 1.0) / 3.0 - 0.5) ** 2
    y = (y @ np.ones((3, 2), dtype=dtype)).tanh().sum()
    y.backward()
    assert y.dtype == dtype and x.grad.dtype == dtype


def test_operators_reflected_and_numpy_left_operand():
    x = leaf([1.0, 2.0])
    y = (1.0 - x) + (2.0 / x) + (2.0**x) + np.array([1.0, 1.0]) * x
    np.testing.assert_allclose(y.data, [1 - 1 + 2 + 2 + 1, 1 - 2 + 1 + 4 + 2])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, -1 - 2 / x.data**2 + np.log(2) * 2**x.data + 1)


def test_comparisons_return_plain_arrays():
    x = Tensor(np.array([1.0, 2.0, 3.0]))
    assert isinstance(x > 2.0, np.ndarray)
    np.testing.assert_array_equal(x <= Tensor(np.array([1.0, 1.0, 5.0])), [True, False, True])
    assert {x: 1}[x] == 1  # still hashable, by identity


def test_conveniences():
    x = Tensor(np.zeros((2, 3), dtype=np.float32))
    assert x.shape == (2, 3) and x.dtype == np.float32 and x.ndim == 2 and len(x) == 2
    assert x.numpy() is x.data and x.T.shape == (3, 2) and x.reshape(3, 2).shape == (3, 2)
    assert Tensor(np.array([4.0])).item() == 4.0
    assert "requires_grad=True" in repr(leaf(1.0))
