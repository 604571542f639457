"""GELU in its tanh approximation (as GPT-2 uses it), forward beside backward.

gelu(x) = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)   (Hendrycks & Gimpel, 2016)

Versions:
  1. `*_ref`: vectorised NumPy, the specification.
  2. `*_numba`: one parallel pass over the flat array. It uses 0.5 (1 + tanh(u)) = sigmoid(2u),
     so the only transcendental is the vectorisable `numba_support.exp` (Numba's own tanh is
     a scalar libm call, see numba_support.py).

Shapes: any; the op is elementwise.
"""
import math

import numpy as np

from .numba_support import FASTMATH, njit, prange, sigmoid

# Python floats, not NumPy float64 scalars: under NumPy 2's promotion rules a float64 scalar
# would silently turn float32 arrays into float64 ones.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_COEF = 0.044715

# --- reference ---


def gelu_forward_ref(x):
    """Elementwise tanh-GELU. x (...) -> out (...).

    >>> gelu_forward_ref(np.array([-10.0, 0.0, 10.0]))  # -> [-0.0, 0.0, 10.0]
    """
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x**3)
    return 0.5 * x * (1.0 + np.tanh(u))


def gelu_backward_ref(dout, x):
    """dx for out = gelu(x). dout, x (...) -> dx (...)."""
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_COEF * x**3))
    # product rule on 0.5 x (1 + t), with dt/dx = (1 - t^2) du/dx, du/dx = sqrt(2/pi)(1 + 3c x^2)
    dudx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dudx)


# --- numba ---


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _gelu_flat(x, out):
    """x (n,) -> out (n,), written in place."""
    for i in prange(x.shape[0]):
        u = SQRT_2_OVER_PI * (x[i] + GELU_COEF * x[i] * x[i] * x[i])
        out[i] = x[i] * sigmoid(2.0 * u)  # 0.5 x (1 + tanh u)


def gelu_forward_numba(x):
    """Same contract as gelu_forward_ref. x (...) -> out (...)."""
    x1 = np.ascontiguousarray(x).ravel()  # (n,)
    out = np.empty_like(x1)  # (n,)
    _gelu_flat(x1, out)
    return out.reshape(x.shape)


# out = x s with s = sigmoid(2u): dx = dout (s + 2 x s (1 - s) du/dx),
# the same number as the reference's 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx, since t = 2s - 1.
@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _gelu_backward_flat(dout, x, dx):
    """dout, x (n,) -> dx (n,), written in place."""
    for i in prange(x.shape[0]):
        xi = x[i]
        s = sigmoid(2.0 * SQRT_2_OVER_PI * (xi + GELU_COEF * xi * xi * xi))
        dudx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * xi * xi)
        dx[i] = dout[i] * (s + 2.0 * xi * s * (1.0 - s) * dudx)


def gelu_backward_numba(dout, x):
    """Same contract as gelu_backward_ref. dout, x (...) -> dx (...)."""
    x1 = np.ascontiguousarray(x).ravel()  # (n,)
    dx = np.empty_like(x1)  # (n,)
    _gelu_backward_flat(np.ascontiguousarray(dout).ravel(), x1, dx)
    return dx.reshape(x.shape)
