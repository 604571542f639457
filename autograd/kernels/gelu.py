"""GELU in its tanh approximation (as GPT-2 uses it), forward beside backward.

gelu(x) = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)   (Hendrycks & Gimpel, 2016)

Versions:
  1. `*_ref`: vectorised NumPy, the specification.
  2. `*_numba`: one pass over the flat array, shared among workers (`run_workers`). It uses
     0.5 (1 + tanh(u)) = sigmoid(2u), so the only transcendental is the vectorisable
     `fast_exp.exp` (Numba's own tanh is a scalar libm call, see fast_exp.py).

Shapes: any; the op is elementwise.
"""
import math

import numpy as np

from .fast_exp import exp
from .numba_support import FASTMATH, njit, run_workers, share, workers_for

# Python floats, not NumPy float64 scalars: under NumPy 2's promotion rules a float64 scalar
# would silently turn float32 arrays into float64 ones.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_COEF = 0.044715

# --- reference ---


def gelu_forward_ref(x):
    """Elementwise tanh-GELU. x (...) -> out (...).

    >>> gelu_forward_ref(np.array([-10.0, 0.0, 10.0]))  # ~0 far left, ~x far right
    array([-0.,  0., 10.])
    """
    # x * x * x, not x**3: NumPy computes a power through pow(), 15x slower than two multiplies
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(u))


def gelu_backward_ref(dout, x):
    """dx for out = gelu(x). dout, x (...) -> dx (...)."""
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x))
    # product rule on 0.5 x (1 + t), with dt/dx = (1 - t^2) du/dx, du/dx = sqrt(2/pi)(1 + 3c x^2)
    dudx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dudx)


# --- numba ---


@njit(cache=True, fastmath=FASTMATH)
def _constants(x):
    """1, 2 sqrt(2/pi) and GELU_COEF in x's dtype, so float32 math stays float32 (16 lanes)."""
    t = x.dtype.type
    return t(1.0), t(2.0 * SQRT_2_OVER_PI), t(GELU_COEF)


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _gelu_flat(x, out, worker, workers):
    """x (n,) -> out (n,), written in place for the elements in worker `worker`'s share."""
    one, k, c = _constants(x)
    lo, hi = share(x.shape[0], worker, workers)
    x, out = x[lo:hi], out[lo:hi]  # its share, as views (see share)
    for i in range(x.shape[0]):
        z = k * (x[i] + c * x[i] * x[i] * x[i])  # z = 2u
        out[i] = x[i] / (one + exp(-z))  # x sigmoid(2u) = 0.5 x (1 + tanh u)


def gelu_forward_numba(x):
    """Same contract as gelu_forward_ref. x (...) -> out (...)."""
    x1 = np.ascontiguousarray(x).ravel()  # (n,)
    out = np.empty_like(x1)  # (n,)
    run_workers(_gelu_flat, workers_for(x1.size), x1, out)
    return out.reshape(x.shape)


# out = x s with s = sigmoid(z), z = 2u: dx = dout (s + x s (1 - s) dz/dx), dz/dx = 2 du/dx;
# the same number as the reference's 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx, since t = 2s - 1.
@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _gelu_backward_flat(dout, x, dx, worker, workers):
    """dout, x (n,) -> dx (n,), written in place for the elements in worker `worker`'s share."""
    one, k, c = _constants(x)
    lo, hi = share(x.shape[0], worker, workers)
    dout, x, dx = dout[lo:hi], x[lo:hi], dx[lo:hi]  # its share, as views (see share)
    for i in range(x.shape[0]):
        xi = x[i]
        s = one / (one + exp(-k * (xi + c * xi * xi * xi)))
        dzdx = k * (one + 3 * c * xi * xi)
        dx[i] = dout[i] * (s + xi * s * (one - s) * dzdx)


def gelu_backward_numba(dout, x):
    """Same contract as gelu_backward_ref. dout, x (...) -> dx (...)."""
    x1 = np.ascontiguousarray(x).ravel()  # (n,)
    dx = np.empty_like(x1)  # (n,)
    run_workers(_gelu_backward_flat, workers_for(x1.size), np.ascontiguousarray(dout).ravel(), x1,
                dx)
    return dx.reshape(x.shape)
