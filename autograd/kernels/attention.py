"""Scaled dot-product attention, forward beside backward.

out = softmax(q k^T / sqrt(D) + mask) v     (Vaswani et al., 2017)

Layout: q is (B, H, Tq, D); k and v are (B, H, Tk, D) with Tq <= Tk. The queries are the *last*
Tq positions of the sequence, so query i sits at absolute position i + (Tk - Tq). With Tq = Tk
this is ordinary causal self-attention; with Tq < Tk it is a step of KV-cached decoding, where
new queries attend to every cached key before them. `causal` hides keys after the query.

The forward returns the output and one logsumexp per query row; from those the backward rebuilds
the attention probabilities exactly (p = exp(s - lse)), which is what lets a tiled version keep
O(T) memory (FlashAttention, Dao et al., 2022).

Versions:
  1. `*_ref`: vectorised NumPy over the whole (Tq, Tk) score matrix: O(T^2) memory.

Shapes: B batch, H heads, Tq queries, Tk keys, D head size.
"""
import math

import numpy as np

# --- reference ---


def _scores_ref(q, k, causal):
    """Scaled, masked scores. q (B,H,Tq,D), k (B,H,Tk,D) -> s (B,H,Tq,Tk), masked = -inf."""
    Tq, Tk, D = q.shape[-2], k.shape[-2], q.shape[-1]
    s = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(D))  # (B, H, Tq, Tk)
    if causal:
        qpos = np.arange(Tq)[:, None] + (Tk - Tq)  # (Tq, 1) absolute query positions
        s = np.where(np.arange(Tk)[None, :] <= qpos, s, -np.inf)  # (B, H, Tq, Tk)
    return s


def attention_forward_ref(q, k, v, causal=True):
    """q (B,H,Tq,D), k, v (B,H,Tk,D) -> out (B,H,Tq,D), lse (B,H,Tq)."""
    s = _scores_ref(q, k, causal)  # (B, H, Tq, Tk)
    m = s.max(axis=-1, keepdims=True)  # (B, H, Tq, 1); finite: a query always sees key 0
    p = np.exp(s - m)  # (B, H, Tq, Tk) unnormalised
    total = p.sum(axis=-1, keepdims=True)  # (B, H, Tq, 1)
    out = (p / total) @ v  # (B, H, Tq, D)
    return out.astype(q.dtype, copy=False), (m + np.log(total))[..., 0].astype(q.dtype)


def attention_backward_ref(dout, q, k, v, out, lse, causal=True):
    """dout, q, out (B,H,Tq,D), k, v (B,H,Tk,D), lse (B,H,Tq) -> dq, dk, dv."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    p = np.exp(_scores_ref(q, k, causal) - lse[..., None])  # (B, H, Tq, Tk) probabilities
    dv = p.swapaxes(-1, -2) @ dout  # (B, H, Tk, D)   out = p v
    dp = dout @ v.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    # softmax backward per row: ds = p * (dp - sum_j dp_j p_j), and sum_j dp_j p_j equals
    # sum_d dout_d out_d (since out = p v), a (Tq,)-sized quantity FlashAttention calls D.
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))  # (B, H, Tq, Tk)
    dq = (ds @ k) * scale  # (B, H, Tq, D)   s = q k^T * scale
    dk = (ds.swapaxes(-1, -2) @ q) * scale  # (B, H, Tk, D)
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype)
