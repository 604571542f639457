"""Softmax and log-softmax over the last axis, forward beside backward.

Versions:
  1. `*_ref`: vectorised NumPy, the specification every other version is tested against.

Shapes: x is (..., V); every leading axis is an independent row.
"""
import numpy as np

# --- reference ---


def softmax_forward_ref(x):
    """y = exp(x) / sum(exp(x)) over the last axis. x (..., V) -> y (..., V).

    >>> softmax_forward_ref(np.array([0.0, np.log(3.0)]))  # -> [0.25, 0.75]
    """
    # Subtracting the row max changes nothing (it cancels in the ratio) but keeps exp() <= 1,
    # so a logit of 1e4 does not overflow to inf.
    z = np.exp(x - x.max(axis=-1, keepdims=True))  # (..., V)
    return z / z.sum(axis=-1, keepdims=True)  # (..., V)


def softmax_backward_ref(dy, y):
    """dx for y = softmax(x), given dy = dL/dy. dy, y (..., V) -> dx (..., V)."""
    # dy_i/dx_j = y_i (delta_ij - y_j), so dx_j = sum_i dy_i y_i (delta_ij - y_j)
    #                                         = y_j (dy_j - sum_i dy_i y_i)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))  # (..., V)


def log_softmax_forward_ref(x):
    """y = x - logsumexp(x) over the last axis. x (..., V) -> y (..., V)."""
    shifted = x - x.max(axis=-1, keepdims=True)  # (..., V), max 0: exp cannot overflow
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (..., V)


def log_softmax_backward_ref(dy, y):
    """dx for y = log_softmax(x). dy, y (..., V) -> dx (..., V)."""
    # y_i = x_i - logsumexp(x) and d logsumexp / dx_j = softmax_j = exp(y_j), so
    # dx_j = dy_j - exp(y_j) * sum_i dy_i
    return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)  # (..., V)
