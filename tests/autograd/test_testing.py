"""autograd/testing.py: the strategies draw what they promise, the checks catch broken ops and
layers, and importing autograd does not need hypothesis."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import GradcheckError, GradcheckInputError, Tensor, nn
from autograd.testing import (axes, broadcastable_pairs, check_gradients, check_layer,
                              jit_settings, seeds, shapes, values)


@given(shape=shapes(min_dims=2, max_dims=3, min_side=2, max_side=4))
def test_shapes_respect_their_bounds(shape):
    assert 2 <= len(shape) <= 3 and all(2 <= n <= 4 for n in shape)


@given(pair=broadcastable_pairs())
def test_broadcastable_pairs_broadcast(pair):
    np.broadcast_shapes(*pair)  # raises if they do not


@given(data=st.data(), shape=shapes())
def test_values_are_float64_and_in_range(data, shape):
    x = data.draw(values(shape, low=0.5, high=3.0))
    assert x.shape == shape and x.dtype == np.float64 and (0.5 <= x).all() and (x < 3.0).all()


@given(data=st.data(), shape=shapes())
def test_axes_are_valid_reduction_axes(data, shape):
    np.sum(np.zeros(shape), axis=data.draw(axes(len(shape))))  # raises on a bad axis


def test_check_gradients_catches_a_wrong_forward_and_a_wrong_backward():
    x = np.linspace(-1, 1, 5)
    assert check_gradients(lambda t: t.tanh(), x, reference=np.tanh)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_gradients(lambda t: t.tanh(), x, reference=np.sin)

    def wrong_square(t):
        return Tensor.from_op(t.data**2, (t,), lambda dout: t.accumulate(dout * t.data))

    with pytest.raises(GradcheckError, match="input 0"):
        check_gradients(wrong_square, x)


class ForgetfulBias(nn.Linear):
    """A Linear whose backward forgets the bias."""

    def forward(self, x):
        w, b = self.weight, self.bias

        def backward(dout):
            x.accumulate(dout @ w.data.T)
            w.accumulate(x.data.T @ dout)

        return Tensor.from_op(x.data @ w.data + b.data, (x, w, b), backward)


def test_check_layer_builds_in_float64_and_names_a_broken_parameter():
    built = []

    def make(dtype, rng):
        built.append(dtype)
        return ForgetfulBias(3, 2, rng=rng, dtype=dtype)

    with pytest.raises(GradcheckError, match=r"parameter bias of shape \(2,\) wrong") as caught:
        check_layer(make, (4, 3))
    assert built == [np.float64] and "parameter weight" not in str(caught.value)


def test_check_layer_refuses_a_layer_that_ignores_the_dtype():
    with pytest.raises(GradcheckInputError, match="parameter weight .* is float32"):
        check_layer(lambda dtype, rng: nn.Linear(3, 2, rng=rng), (4, 3))


def test_check_layer_draws_reproducible_inputs_and_compares_the_forward():
    seen = []

    def reference(layer, x):
        seen.append(x)
        return x @ layer.weight.data + layer.bias.data

    def make(dtype, rng):
        return nn.Linear(3, 2, rng=rng, dtype=dtype)

    check_layer(make, (4, 3), reference=reference, seed=7)
    check_layer(make, (4, 3), reference=reference, seed=7)
    np.testing.assert_array_equal(seen[0], seen[1])
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_layer(make, (4, 3), reference=lambda layer, x: x @ layer.weight.data)


def test_jit_settings_have_no_deadline_and_take_changes():
    s = jit_settings(max_examples=3)
    assert s.deadline is None and s.max_examples == 3
    calls = []

    @s
    @given(seed=seeds())
    def slow(seed):
        calls.append(seed)

    slow()
    assert 1 <= len(calls) <= 3  # the loaded profile's count was replaced


def test_importing_autograd_does_not_import_hypothesis():
    code = ("import sys, autograd, autograd.nn, autograd.functional, autograd.gradcheck; "
            "print('hypothesis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
