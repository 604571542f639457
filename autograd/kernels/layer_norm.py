"""Layer norm and RMS norm over the last axis, forward beside backward.

LayerNorm (Ba et al., 2016):  out = (x - mean) * rstd * w + b,   rstd = 1 / sqrt(var + eps)
RMSNorm (Zhang & Sennrich, 2019): out = x * rstd * w,            rstd = 1 / sqrt(mean(x^2) + eps)

The forward saves the per-row statistics (mean, rstd), so the backward never recomputes a
reduction it already did — llm.c's layernorm_forward saves the same two arrays.

Versions:
  1. `*_ref`: vectorised NumPy, the specification.
  2. `*_numba`: rows shared among workers (`run_workers`), each row read twice in the forward
     (mean and variance, then the output) and twice in the backward. RMS norm is the same
     kernel with the centring switched off (mean fixed at 0, no bias, no mean(dxhat) term), so
     there is one loop nest.

Shapes: x is (..., C); w and b are (C,). "Rows" are all the leading positions.
"""
import numpy as np

from .numba_support import FASTMATH, njit, rows, run_workers, share, workers_for

# --- reference ---


def layer_norm_forward_ref(x, w, b, eps=1e-5):
    """x (..., C), w (C,), b (C,) or None -> out (..., C), mean (...), rstd (...)."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mean  # (..., C)
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    out = xc * rstd * w  # (..., C)
    if b is not None:
        out += b
    return out, mean[..., 0], rstd[..., 0]


def layer_norm_backward_ref(dout, x, w, mean, rstd):
    """dout, x (..., C), w (C,), mean, rstd (...) -> dx (..., C), dw (C,), db (C,)."""
    C = x.shape[-1]
    rstd = rstd[..., None]  # (..., 1)
    xhat = (x - mean[..., None]) * rstd  # (..., C) the normalised input, recomputed
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)  # (C,)  out = xhat * w + b
    db = dout.reshape(-1, C).sum(axis=0)  # (C,)
    dxhat = dout * w  # (..., C)
    # xhat = (x - mean) * rstd. Through mean and rstd every x_j touches every xhat_i; summing the
    # three paths gives  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
    dx = rstd * (
        dxhat
        - dxhat.mean(axis=-1, keepdims=True)
        - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    )  # (..., C)
    return dx, dw, db


def rms_norm_forward_ref(x, w, eps=1e-5):
    """x (..., C), w (C,) -> out (..., C), rstd (...)."""
    rstd = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    return x * rstd * w, rstd[..., 0]


def rms_norm_backward_ref(dout, x, w, rstd):
    """dout, x (..., C), w (C,), rstd (...) -> dx (..., C), dw (C,)."""
    C = x.shape[-1]
    rstd = rstd[..., None]  # (..., 1)
    xhat = x * rstd  # (..., C)
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    dxhat = dout * w  # (..., C)
    # As for layer norm without the mean path: dx = rstd * (dxhat - xhat * mean(dxhat * xhat)).
    dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))  # (..., C)
    return dx, dw


# --- numba ---

# The backward sums dw and db over all rows. Each of N_PARTS row blocks sums into its own
# partial row, and the partials are added at the end: no two threads write the same memory, and
# the answer does not depend on the thread count.
N_PARTS = 16


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _norm_rows(x, w, b, eps, center, out, mean, rstd, worker, workers):
    """x (N, C), w, b (C,) -> out (N, C), mean, rstd (N,), written in place for the rows
    in worker `worker`'s share."""
    N, C = x.shape
    lo, hi = share(N, worker, workers)
    for n in range(lo, hi):
        xn, on = x[n], out[n]  # (C,) row views, so that the loops over c vectorise (see share)
        # pass 1: mean (0 for RMS norm), then the variance about it
        mu = 0.0
        if center:
            for c in range(C):
                mu += xn[c]
            mu /= C
        var = 0.0
        for c in range(C):
            var += (xn[c] - mu) * (xn[c] - mu)
        r = 1.0 / np.sqrt(var / C + eps)
        # pass 2: normalise, scale, shift
        for c in range(C):
            on[c] = (xn[c] - mu) * r * w[c] + b[c]
        mean[n] = mu
        rstd[n] = r


def _norm_forward(x, w, b, eps, center):
    """x (..., C) -> out (..., C), mean (...), rstd (...) for either norm."""
    x2 = rows(x)  # (N, C)
    out = np.empty_like(x2)  # (N, C)
    mean = np.empty(len(x2), dtype=x.dtype)  # (N,)
    rstd = np.empty(len(x2), dtype=x.dtype)  # (N,)
    run_workers(_norm_rows, workers_for(x2.size), x2, w, b, eps, center, out, mean, rstd)
    return out.reshape(x.shape), mean.reshape(x.shape[:-1]), rstd.reshape(x.shape[:-1])


def layer_norm_forward_numba(x, w, b, eps=1e-5):
    """Same contract as layer_norm_forward_ref. x (..., C) -> out, mean, rstd."""
    return _norm_forward(x, w, np.zeros_like(w) if b is None else b, eps, True)


def rms_norm_forward_numba(x, w, eps=1e-5):
    """Same contract as rms_norm_forward_ref. x (..., C) -> out (..., C), rstd (...)."""
    out, _, rstd = _norm_forward(x, w, np.zeros_like(w), eps, False)
    return out, rstd


# xhat = (x - mean) * rstd, out = xhat * w + b:
# dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dout * w,
# dw = sum_rows dout * xhat, db = sum_rows dout. RMS norm drops the mean(dxhat) term.
@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _norm_backward_rows(dout, x, w, mean, rstd, center, dx, dw_parts, db_parts, worker, workers):
    """dout, x (N, C) -> dx (N, C) and per-block dw, db (N_PARTS, C), written in place for the
    blocks in worker `worker`'s share: a contiguous run of them (dealt round robin instead, the
    backward at (16384, 384) took 4.3-5.1 ms on two workers, not 3.1-3.3)."""
    N, C = x.shape
    n_parts = dw_parts.shape[0]
    first, last = share(n_parts, worker, workers)
    for part in range(first, last):  # blocks of rows, one partial dw/db row each
        dw, db = dw_parts[part], db_parts[part]  # (C,) each: this block's sums
        for n in range(part * N // n_parts, (part + 1) * N // n_parts):
            xn, gn, dxn = x[n], dout[n], dx[n]  # (C,) row views, as in _norm_rows
            mu, r = mean[n], rstd[n]
            # pass 1: the row's two means, and this row's share of dw and db
            g_mean = 0.0
            gx_mean = 0.0
            for c in range(C):
                xhat = (xn[c] - mu) * r
                g = gn[c] * w[c]
                g_mean += g
                gx_mean += g * xhat
                dw[c] += gn[c] * xhat
                db[c] += gn[c]
            g_mean = g_mean / C if center else 0.0
            gx_mean /= C
            # pass 2: dx
            for c in range(C):
                xhat = (xn[c] - mu) * r
                dxn[c] = r * (gn[c] * w[c] - g_mean - xhat * gx_mean)


def _norm_backward(dout, x, w, mean, rstd, center):
    """dout, x (..., C) -> dx (..., C), dw (C,), db (C,) for either norm."""
    x2 = rows(x)  # (N, C)
    dx = np.empty_like(x2)  # (N, C)
    parts = min(N_PARTS, len(x2))
    dw_parts = np.zeros((parts, x2.shape[1]))  # (parts, C) float64 partial sums
    db_parts = np.zeros((parts, x2.shape[1]))  # (parts, C)
    mean, rstd = np.ascontiguousarray(mean).ravel(), np.ascontiguousarray(rstd).ravel()  # (N,)
    run_workers(_norm_backward_rows, workers_for(x2.size), rows(dout), x2, w, mean, rstd, center,
                dx, dw_parts, db_parts)
    dw, db = dw_parts.sum(axis=0).astype(x.dtype), db_parts.sum(axis=0).astype(x.dtype)  # (C,)
    return dx.reshape(x.shape), dw, db


def layer_norm_backward_numba(dout, x, w, mean, rstd):
    """Same contract as layer_norm_backward_ref. -> dx (..., C), dw (C,), db (C,)."""
    return _norm_backward(dout, x, w, mean, rstd, True)


def rms_norm_backward_numba(dout, x, w, rstd):
    """Same contract as rms_norm_backward_ref. -> dx (..., C), dw (C,)."""
    dx, dw, _ = _norm_backward(dout, x, w, np.zeros_like(rstd), rstd, False)
    return dx, dw
