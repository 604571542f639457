"""autograd/gradcheck.py: it passes right gradients and, above all, catches wrong ones — including
the checks that would pass by proving nothing (float32 layers, inputs the output ignores)."""
import re

import numpy as np
import pytest

from autograd import GradcheckError, GradcheckInputError, Tensor, gradcheck, nn, ops
from autograd import functional as F


def scale_by_three(x, claimed_slope):
    """out = 3x with a backward that claims d out/dx = claimed_slope."""

    def backward(dout):
        x.accumulate(dout * claimed_slope)

    return Tensor.from_op(x.data * 3.0, (x,), backward)


def test_passes_a_correct_backward():
    assert gradcheck(lambda x: scale_by_three(x, 3.0), [np.arange(4.0)])


def test_fails_a_wrong_backward_and_names_the_element():
    wrong_at = r"input 0 of shape \(2, 3\) wrong at index \(\d, \d\)"
    with pytest.raises(GradcheckError, match=wrong_at):
        gradcheck(lambda x: scale_by_three(x, 2.0), [np.ones((2, 3))])


def test_catches_an_error_a_plain_sum_would_hide():
    # sum(softmax(x)) = 1 for every x, so a backward returning anything orthogonal to the
    # all-ones direction would pass a check of the plain sum; the random projection catches it
    def wrong_softmax(x):
        y = F.softmax(x).data

        def backward(dout):
            x.accumulate(dout - dout.mean(axis=-1, keepdims=True))

        return Tensor.from_op(y, (x,), backward)

    with pytest.raises(GradcheckError):
        gradcheck(wrong_softmax, [np.random.default_rng(0).standard_normal((2, 5))])


def test_names_the_wrong_input_among_several():
    def half_wrong(a, b):
        def backward(dout):
            a.accumulate(dout * b.data)
            b.accumulate(dout * a.data * 1.5)

        return Tensor.from_op(a.data * b.data, (a, b), backward)

    rng = np.random.default_rng(1)
    with pytest.raises(GradcheckError, match="input 1") as caught:
        gradcheck(half_wrong, [rng.standard_normal(3), rng.standard_normal(3)])
    assert "input 0" not in str(caught.value)


def test_reports_every_wrong_input_with_its_worst_element_and_both_values():
    def wrong_twice(a, b):  # out = 3a + 5b, claimed slopes 2 and 4
        def backward(dout):
            a.accumulate(dout * 2.0)
            b.accumulate(dout * 4.0)

        return Tensor.from_op(3.0 * a.data + 5.0 * b.data, (a, b), backward)

    with pytest.raises(GradcheckError) as caught:
        gradcheck(wrong_twice, [np.ones((2, 2)), np.ones((2, 2))])
    line = (r"input (\d) of shape \(2, 2\) wrong at index \(\d, \d\): backward gave (\S+), "
            r"finite differences (\S+) \(4 of 4 elements off\)")
    found = re.findall(line, str(caught.value))
    assert [i for i, _, _ in found] == ["0", "1"]
    # with L = sum(out * w): backward says 2 w_i (4 w_i), finite differences 3 w_i (5 w_i)
    ratios = [float(analytic) / float(numeric) for _, analytic, numeric in found]
    np.testing.assert_allclose(ratios, [2 / 3, 4 / 5], rtol=1e-6)


def test_integer_inputs_pass_through_unchecked():
    logits = np.random.default_rng(2).standard_normal((4, 3))
    assert gradcheck(F.cross_entropy, [logits, np.array([0, 2, 1, 1])])


def test_float32_arrays_are_checked_as_float64_copies_that_fn_receives():
    seen = []

    def record(x):
        seen.append(x.dtype)
        return x.tanh()

    gradcheck(record, [np.ones(2, dtype=np.float32)])
    assert set(seen) == {np.dtype(np.float64)}


def test_an_input_the_output_ignores_is_an_error_not_a_pass():
    with pytest.raises(GradcheckInputError, match=r"does not depend.*\n  input 1 of shape \(2,\)"):
        gradcheck(lambda a, b: a * 2.0, [np.ones(2), np.ones(2)])
    # as a constant (a Tensor that needs no gradient) it is fine
    assert gradcheck(lambda a, b: a * 2.0, [np.ones(2), Tensor(np.ones(2))])


def test_a_gradient_claimed_for_an_unused_input_is_caught():
    def leaky(a, b):  # claims a gradient for b although the output does not depend on b
        def backward(dout):
            a.accumulate(dout * 2.0)
            b.accumulate(dout)

        return Tensor.from_op(a.data * 2.0, (a, b), backward)

    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(leaky, [np.ones(2), np.ones(2)])


def test_an_output_computed_outside_the_graph_is_caught():
    # the output depends on x, but through .data: backward never reaches x
    with pytest.raises(GradcheckError, match="input 0.*backward gave 0, finite differences"):
        gradcheck(lambda x: Tensor(x.data * 2.0), [np.ones(3)])


def test_a_zero_gradient_the_graph_did_compute_passes():
    # relu of negative inputs: gradient 0 both ways, but x is in the graph, so this is genuine
    assert gradcheck(ops.relu, [-np.ones(3)])


class ForgetfulLinear(nn.Linear):
    """A Linear whose backward forgets the weight: dW should be x^T dout."""

    def forward(self, x):
        w, b = self.weight, self.bias

        def backward(dout):
            x.accumulate(dout @ w.data.T)
            b.accumulate(dout.sum(axis=0))

        return Tensor.from_op(x.data @ w.data + b.data, (x, w, b), backward)


def forgetful(dtype):
    return ForgetfulLinear(4, 2, rng=np.random.default_rng(0), dtype=dtype)


X = np.random.default_rng(3).standard_normal((3, 4))


def test_a_float64_broken_layer_fails_naming_the_parameter():
    layer = forgetful(np.float64)
    with pytest.raises(GradcheckError, match=r"parameter weight of shape \(4, 2\) wrong") as e:
        gradcheck(layer, [X], module=layer)
    assert "bias" not in str(e.value) and "input 0" not in str(e.value)


@pytest.mark.parametrize("call, message", [
    # the parameters among the inputs: named by position (and by name, given the module)
    (lambda layer: gradcheck(lambda x, *p: layer(x), [X, *layer.parameters()]),
     r"input 1 of shape \(4, 2\) is float32\n  input 2 of shape \(2,\) is float32"),
    (lambda layer: gradcheck(lambda x, *p: layer(x), [X, *layer.parameters()], module=layer),
     r"input 1, parameter weight, of shape \(4, 2\) is float32"),
    # the module given: named by named_parameters()
    (lambda layer: gradcheck(layer, [X], module=layer),
     r"parameter weight of shape \(4, 2\) is float32\n  parameter bias of shape \(2,\) is float32"),
    # only x given: found in fn's graph after backward
    (lambda layer: gradcheck(layer, [X]), r"a tensor of shape \(4, 2\) that fn uses"),
])
def test_every_way_of_checking_a_float32_layer_fails_loudly(call, message):
    # before, float64 copies of the float32 weights were perturbed, which the layer never
    # reads: both gradients were zero and this broken layer passed
    with pytest.raises(GradcheckInputError, match=r"float64[\s\S]*" + message):
        call(forgetful(np.float32))


def test_frozen_parameters_are_constants_and_only_the_rest_is_checked():
    layer = forgetful(np.float64)
    layer.weight.requires_grad_(False)  # the broken gradient now belongs to a constant
    assert gradcheck(layer, [X], module=layer)
    assert layer.weight.grad is None and layer.bias.grad is not None
