"""Gradient checking: compare backward() with central finite differences.

For a function f of arrays, the derivative along one element is approximately

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)

with error O(eps^2). That is slow (two evaluations per input element) but needs nothing but
the forward pass, so it is the independent witness every hand-written backward is tested
against. It must run in float64: in float32 the rounding error of f (~1e-7 |f|) divided by
2 eps swamps the answer.

To check a function with many outputs at once we differentiate L = sum(f(x) * w) for a fixed
random w. A plain sum would be blind to some errors: the rows of a softmax always sum to 1, so
sum(softmax(x)) has zero gradient whatever the backward does.
"""
import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """backward() and finite differences disagree; the message names the worst element."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check fn's gradients with respect to every floating-point input. Returns True or raises.

    fn takes Tensors (in the order of `inputs`) and returns a Tensor. `inputs` are arrays or
    Tensors; floating ones are checked, integer ones (targets, ids) are passed through. A float64
    tensor that requires grad is checked in place — so a layer built in float64 can be checked
    against its own parameters — anything else as a float64 copy.
    An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    >>> gradcheck(lambda x: x.tanh(), [np.random.randn(3, 4)])   # -> True
    >>> gradcheck(lambda x, *p: layer(x), [x, *layer.parameters()])
    """
    args = [_as_input(x) for x in inputs]
    with no_grad():
        w = np.random.default_rng(seed).standard_normal(np.shape(fn(*args).data))

    def loss():  # the scalar we differentiate, evaluated without building a graph
        return float((fn(*args).data * w).sum())

    out = fn(*args)
    (out * w).sum().backward()
    for position, x in enumerate(args):
        if x.requires_grad:
            analytic = np.zeros_like(x.data) if x.grad is None else x.grad
            _compare(position, analytic, _numeric_grad(loss, x.data, eps), atol, rtol)
    return True


def _as_input(x):
    if isinstance(x, Tensor) and x.requires_grad and x.dtype == np.float64:
        x.grad = None  # in place; stale gradients would spoil the comparison
        return x
    data = np.asarray(x.data if isinstance(x, Tensor) else x)
    if np.issubdtype(data.dtype, np.floating):
        return Tensor(data.astype(np.float64), requires_grad=True)
    return Tensor(data)


def _numeric_grad(loss, x, eps):
    """Central differences of loss() w.r.t. every element of x (changed in place, restored)."""
    grad = np.zeros_like(x)
    with no_grad():
        for i in np.ndindex(x.shape):
            original = x[i]
            x[i] = original + eps
            plus = loss()
            x[i] = original - eps
            minus = loss()
            x[i] = original
            grad[i] = (plus - minus) / (2 * eps)
    return grad


def _compare(position, analytic, numeric, atol, rtol):
    excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if excess.size and excess.max() > 0:
        worst = np.unravel_index(np.argmax(excess), excess.shape)
        raise GradcheckError(
            f"gradient of input {position} wrong at index {tuple(int(i) for i in worst)}: "
            f"backward gave {analytic[worst]:.8g}, finite differences {numeric[worst]:.8g} "
            f"(atol={atol}, rtol={rtol})"
        )
