"""Softmax and log-softmax over the last axis, forward beside backward.

Versions:
  1. `*_ref`: vectorised NumPy, the specification every other version is tested against.
  2. `*_numba`: one fused loop nest per row, rows shared among workers (`run_workers`); three
     passes over a row that stays in L1 cache (max; exp and sum; normalise) instead of NumPy's
     five full-array temporaries. exp is `fast_exp.exp`, which LLVM vectorises.

Shapes: x is (..., V); every leading axis is an independent row.
"""
import numpy as np

from .fast_exp import exp
from .numba_support import FASTMATH, fmax, njit, rows, run_workers, share, workers_for

# --- reference ---


def softmax_forward_ref(x):
    """y = exp(x) / sum(exp(x)) over the last axis. x (..., V) -> y (..., V).

    >>> softmax_forward_ref(np.array([0.0, np.log(3.0)]))  # weights 1 : 3
    array([0.25, 0.75])
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


# --- numba ---


@njit(cache=True, fastmath=FASTMATH)
def row_max(x):
    """max of a 1-D row x (V,)."""
    m = x[0]
    for j in range(1, x.shape[0]):
        m = fmax(m, x[j])
    return m


@njit(cache=True, fastmath=FASTMATH)
def row_logsumexp(x):
    """log(sum(exp(x))) of a 1-D row x (V,), shifted by the max so nothing overflows."""
    m = row_max(x)
    total = x.dtype.type(0)  # sums in the input's dtype, as NumPy's do: float32 is 2x the lanes
    for j in range(x.shape[0]):
        total += exp(x[j] - m)
    return m + np.log(total)


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _softmax_rows(x, y, worker, workers):
    """x (N, V) -> y (N, V), written in place for the rows in worker `worker`'s share."""
    lo, hi = share(x.shape[0], worker, workers)
    x, y = x[lo:hi], y[lo:hi]  # its rows, as views (see share)
    for n in range(x.shape[0]):  # rows are independent: one thread takes a block of rows
        # pass 1: the max, so every exponent is <= 0
        m = row_max(x[n])
        # pass 2: exponentiate into y and sum
        total = x.dtype.type(0)
        for j in range(x.shape[1]):
            e = exp(x[n, j] - m)
            y[n, j] = e
            total += e
        # pass 3: normalise
        inv = 1.0 / total
        for j in range(x.shape[1]):
            y[n, j] *= inv


def softmax_forward_numba(x):
    """Same contract as softmax_forward_ref. x (..., V) -> y (..., V)."""
    x2 = rows(x)  # (N, V)
    y = np.empty_like(x2)  # (N, V)
    run_workers(_softmax_rows, workers_for(x2.size), x2, y)
    return y.reshape(x.shape)


# y = softmax(x); dx = y * (dy - sum(dy * y))
@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _softmax_backward_rows(dy, y, dx, worker, workers):
    """dy, y (N, V) -> dx (N, V), written in place for the rows in worker `worker`'s share."""
    lo, hi = share(y.shape[0], worker, workers)
    dy, y, dx = dy[lo:hi], y[lo:hi], dx[lo:hi]  # its rows, as views (see share)
    for n in range(y.shape[0]):
        # pass 1: the row's dot product sum(dy * y); pass 2: dx
        dot = y.dtype.type(0)
        for j in range(y.shape[1]):
            dot += dy[n, j] * y[n, j]
        for j in range(y.shape[1]):
            dx[n, j] = y[n, j] * (dy[n, j] - dot)


def softmax_backward_numba(dy, y):
    """Same contract as softmax_backward_ref. dy, y (..., V) -> dx (..., V)."""
    y2 = rows(y)  # (N, V)
    dx = np.empty_like(y2)  # (N, V)
    run_workers(_softmax_backward_rows, workers_for(y2.size), rows(dy), y2, dx)
    return dx.reshape(y.shape)


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _log_softmax_rows(x, y, worker, workers):
    """x (N, V) -> y = x - logsumexp(x) (N, V), written in place for the rows in worker
    `worker`'s share."""
    lo, hi = share(x.shape[0], worker, workers)
    x, y = x[lo:hi], y[lo:hi]  # its rows, as views (see share)
    for n in range(x.shape[0]):
        # passes 1-2: max, then sum of exp (row_logsumexp); pass 3: subtract
        lse = row_logsumexp(x[n])
        for j in range(x.shape[1]):
            y[n, j] = x[n, j] - lse


def log_softmax_forward_numba(x):
    """Same contract as log_softmax_forward_ref. x (..., V) -> y (..., V)."""
    x2 = rows(x)  # (N, V)
    y = np.empty_like(x2)  # (N, V)
    run_workers(_log_softmax_rows, workers_for(x2.size), x2, y)
    return y.reshape(x.shape)


# y = log_softmax(x); dx = dy - exp(y) * sum(dy)
@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _log_softmax_backward_rows(dy, y, dx, worker, workers):
    """dy, y (N, V) -> dx (N, V), written in place for the rows in worker `worker`'s share."""
    lo, hi = share(y.shape[0], worker, workers)
    dy, y, dx = dy[lo:hi], y[lo:hi], dx[lo:hi]  # its rows, as views (see share)
    for n in range(y.shape[0]):
        # pass 1: sum(dy); pass 2: dx, with exp(y) = softmax(x) rebuilt on the fly
        total = y.dtype.type(0)
        for j in range(y.shape[1]):
            total += dy[n, j]
        for j in range(y.shape[1]):
            dx[n, j] = dy[n, j] - exp(y[n, j]) * total


def log_softmax_backward_numba(dy, y):
    """Same contract as log_softmax_backward_ref. dy, y (..., V) -> dx (..., V)."""
    y2 = rows(y)  # (N, V)
    dx = np.empty_like(y2)  # (N, V)
    run_workers(_log_softmax_backward_rows, workers_for(y2.size), rows(dy), y2, dx)
    return dx.reshape(y.shape)
