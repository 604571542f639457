"""Layer norm and RMS norm over the last axis, forward beside backward.

LayerNorm (Ba et al., 2016):  out = (x - mean) * rstd * w + b,   rstd = 1 / sqrt(var + eps)
RMSNorm (Zhang & Sennrich, 2019): out = x * rstd * w,            rstd = 1 / sqrt(mean(x^2) + eps)

The forward saves the per-row statistics (mean, rstd), so the backward never recomputes a
reduction it already did — llm.c's layernorm_forward saves the same two arrays.

Versions:
  1. `*_ref`: vectorised NumPy, the specification.

Shapes: x is (..., C); w and b are (C,). "Rows" are all the leading positions.
"""
import numpy as np

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
