"""autograd/gradcheck.py: it passes right gradients and, above all, catches wrong ones."""
import numpy as np
import pytest

from autograd import GradcheckError, Tensor, functional as F, gradcheck


def scale_by_three(x, claimed_slope):
    """out = 3x with a backward that claims d out/dx = claimed_slope."""

    def backward(dout):
        x.accumulate(dout * claimed_slope)

    return Tensor.from_op(x.data * 3.0, (x,), backward)


def test_passes_a_correct_backward():
    assert gradcheck(lambda x: scale_by_three(x, 3.0), [np.arange(4.0)])


def test_fails_a_wrong_backward_and_names_the_element():
    with pytest.raises(GradcheckError, match=r"input 0 wrong at index \(\d+, \d+\)"):
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
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(half_wrong, [rng.standard_normal(3), rng.standard_normal(3)])


def test_integer_inputs_pass_through_unchecked():
    logits = np.random.default_rng(2).standard_normal((4, 3))
    assert gradcheck(F.cross_entropy, [logits, np.array([0, 2, 1, 1])])


def test_float32_inputs_are_checked_in_float64():
    seen = []

    def record(x):
        seen.append(x.dtype)
        return x.tanh()

    gradcheck(record, [np.ones(2, dtype=np.float32)])
    assert set(seen) == {np.dtype(np.float64)}


def test_a_gradient_claimed_for_an_unused_input_is_caught():
    assert gradcheck(lambda a, b: a * 2.0, [np.ones(2), np.ones(2)])  # b unused: gradient 0

    def leaky(a, b):  # claims a gradient for b although the output does not depend on b
        def backward(dout):
            a.accumulate(dout * 2.0)
            b.accumulate(dout)

        return Tensor.from_op(a.data * 2.0, (a, b), backward)

    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(leaky, [np.ones(2), np.ones(2)])
