"""Scaled dot-product attention, forward beside backward.

out = softmax(q k^T / sqrt(hs) + mask) v     (Vaswani et al., 2017)

Layout: q is (B, H, Tq, hs); k and v are (B, H, Tk, hs). The queries are the *last* Tq positions
of the sequence, so query i sits at absolute position i + (Tk - Tq). With Tq = Tk this is
ordinary causal self-attention; with Tq < Tk it is a step of KV-cached decoding, where new
queries attend to every cached key before them. `causal` hides keys after the query (and so
needs Tq <= Tk); without it every query sees every key.

The forward returns the output and one logsumexp per query row; from those the backward rebuilds
the attention probabilities exactly (p = exp(s - lse)), which is what lets the Numba versions
keep O(T) memory (FlashAttention, Dao et al., 2022): no (Tq, Tk) matrix is ever stored.

Versions, numbered as llm.c numbers its kernels (read them in this order):
  1. `*_ref`: vectorised NumPy over the whole (Tq, Tk) score matrix: O(T^2) memory. The
     specification the other two are tested equal to.
  2. `*_numba`: the FlashAttention recurrence as plain loops. One query row at a time walks
     its keys once, left to right, keeping a running max, a running sum and an unnormalised
     output (the "online softmax", Milakov & Gimelshein, 2018); the backward revisits the same
     keys, rebuilding each probability from the saved lse. (batch, head) pairs run in parallel.
  3. `*_tiled` in attention_tiled.py: the same algorithm built like a BLAS kernel, blocks of
     queries against tiles of keys, every product made of one register-blocked 4x4
     micro-kernel. Forward plus backward on one thread, measured 1.2x version 2's speed at
     the shakespeare-char-cpu model's shapes and 1.7x at shakespeare-char's. The numba
     backend runs it, except for decoding's few queries (`attention_forward_fast`, below).

Shapes: B batch, H heads, Tq queries, Tk keys, hs head size.
Left out: masks other than causal, dropout on the probabilities, grouped-query attention.
"""
import math

import numpy as np

from .attention_tiled import attention_backward_tiled, attention_forward_tiled
from .fast_exp import exp
from .numba_support import FASTMATH, njit, prange

# --- reference ---


def _scores_ref(q, k, causal):
    """Scaled, masked scores. q (B,H,Tq,hs), k (B,H,Tk,hs) -> s (B,H,Tq,Tk), masked = -inf."""
    Tq, Tk, hs = q.shape[-2], k.shape[-2], q.shape[-1]
    s = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(hs))  # (B, H, Tq, Tk)
    if causal:
        qpos = np.arange(Tq)[:, None] + (Tk - Tq)  # (Tq, 1) absolute query positions
        s = np.where(np.arange(Tk)[None, :] <= qpos, s, -np.inf)  # (B, H, Tq, Tk)
    return s


def attention_forward_ref(q, k, v, causal=True):
    """q (B,H,Tq,hs), k, v (B,H,Tk,hs) -> out (B,H,Tq,hs), lse (B,H,Tq).

    Two queries, two keys with equal scores: the first query sees only key 0, the second both.
    >>> q, k = np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2))
    >>> out, lse = attention_forward_ref(q, k, np.array([[[[1.0, 0.0], [3.0, 2.0]]]]))
    >>> out[0, 0], lse[0, 0]    # lse: log 1, log 2
    (array([[1., 0.],
           [2., 1.]]), array([0.        , 0.69314718]))
    """
    s = _scores_ref(q, k, causal)  # (B, H, Tq, Tk)
    m = s.max(axis=-1, keepdims=True)  # (B, H, Tq, 1); finite: a query always sees key 0
    p = np.exp(s - m)  # (B, H, Tq, Tk) unnormalised
    total = p.sum(axis=-1, keepdims=True)  # (B, H, Tq, 1)
    out = (p / total) @ v  # (B, H, Tq, hs)
    return out.astype(q.dtype, copy=False), (m + np.log(total))[..., 0].astype(q.dtype)


def attention_backward_ref(dout, q, k, v, out, lse, causal=True):
    """dout, q, out (B,H,Tq,hs), k, v (B,H,Tk,hs), lse (B,H,Tq) -> dq, dk, dv."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    p = np.exp(_scores_ref(q, k, causal) - lse[..., None])  # (B, H, Tq, Tk) probabilities
    dv = p.swapaxes(-1, -2) @ dout  # (B, H, Tk, hs)   out = p v
    dp = dout @ v.swapaxes(-1, -2)  # (B, H, Tq, Tk)
    # softmax backward per row: ds = p * (dp - sum_j dp_j p_j), and sum_j dp_j p_j equals
    # sum_d dout_d out_d (since out = p v), a (Tq,)-sized quantity FlashAttention calls D.
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))  # (B, H, Tq, Tk)
    dq = (ds @ k) * scale  # (B, H, Tq, hs)   s = q k^T * scale
    dk = (ds.swapaxes(-1, -2) @ q) * scale  # (B, H, Tk, hs)
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype)


# --- numba ---
# Version 2: the FlashAttention recurrence in its plainest loop form. Each (batch, head) pair
# runs on one thread; within it, loop 1 takes the query rows one at a time, loop 2 that row's
# visible keys one at a time, and loop 3 runs over the hs channels (the one LLVM vectorises).


@njit(cache=True, fastmath=FASTMATH)
def _dot(x, y):
    """x . y for x, y (hs,), summed in their dtype."""
    total = x.dtype.type(0)
    for d in range(x.shape[0]):
        total += x[d] * y[d]
    return total


@njit(cache=True)
def _contiguous(x):
    """x itself if it is C-contiguous (a head of a decoding cache is), else a contiguous copy
    (a head of the model's qkv view is not). Either way Numba then knows its rows have stride
    1, and LLVM vectorises the loops over d: measured 5x faster at a decoding step."""
    return np.ascontiguousarray(x)


@njit(cache=True)
def _visible_keys(i, Tq, Tk, causal):
    """How many keys query row i sees: it sits at position i + Tk - Tq and sees keys up to it."""
    return i + Tk - Tq + 1 if causal else Tk


@njit(cache=True, fastmath=FASTMATH)
def _scaled_copy(x, scale, out):
    """out = x * scale, for x, out (hs,). Folding 1/sqrt(hs) into q costs hs multiplies per row,
    not one per score."""
    for d in range(x.shape[0]):
        out[d] = x[d] * scale


@njit(cache=True, fastmath=FASTMATH)
def _row_forward(qi, k, v, n_keys, out_i):
    """One query row over keys j < n_keys by the online softmax; returns its lse.

    qi (hs,) the query already divided by sqrt(hs); k, v (Tk, hs) -> out_i (hs,) in place. Over the
    keys seen so far it keeps m = max s_j, l = sum exp(s_j - m) and out_i = sum exp(s_j - m) v_j,
    so each key is read once and no row of scores is stored.
    """
    m = qi.dtype.type(-np.inf)  # running max score
    l = qi.dtype.type(0)  # running sum of exp(s_j - m)
    out_i[:] = 0.0  # running sum of exp(s_j - m) v_j
    for j in range(n_keys):  # loop 2: keys left to right
        s = _dot(qi, k[j])  # (q_i . k_j) / sqrt(hs)
        if s > m:  # a new max: what was summed under m shrinks, exp(x - s) = exp(x - m) exp(m - s)
            c = exp(m - s)  # 0 at the first key, where m = -inf
            l *= c
            for d in range(out_i.shape[0]):  # loop 3
                out_i[d] *= c
            m = s
        p = exp(s - m)  # <= 1: no overflow, however large the scores
        l += p
        for d in range(out_i.shape[0]):  # loop 3: out_i += p v_j
            out_i[d] += p * v[j, d]
    for d in range(out_i.shape[0]):  # normalise: out_i = sum_j softmax(s)_j v_j
        out_i[d] /= l
    return m + np.log(l)  # log sum_j exp(s_j)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _forward_rows(q, k, v, causal, out, lse):
    """q (B,H,Tq,hs), k, v (B,H,Tk,hs) of any strides -> out (B,H,Tq,hs), lse (B,H,Tq) in place."""
    B, H, Tq, hs = q.shape
    scale = q.dtype.type(1.0 / np.sqrt(hs))
    for bh in prange(B * H):  # (batch, head) pairs are independent
        b, h = bh // H, bh % H
        kh, vh = _contiguous(k[b, h]), _contiguous(v[b, h])  # (Tk, hs) each
        qi = np.empty(hs, dtype=q.dtype)  # (hs,) this thread's scaled query row
        for i in range(Tq):  # loop 1: query rows
            _scaled_copy(q[b, h, i], scale, qi)
            n_keys = _visible_keys(i, Tq, k.shape[2], causal)
            lse[b, h, i] = _row_forward(qi, kh, vh, n_keys, out[b, h, i])


def attention_forward_numba(q, k, v, causal=True):
    """Same contract as attention_forward_ref. -> out (B,H,Tq,hs), lse (B,H,Tq).

    A decoding step: one new query (Tq = 1) attends to both cached keys.
    >>> k, v = np.zeros((1, 1, 2, 2)), np.array([[[[1.0, 0.0], [3.0, 2.0]]]])
    >>> attention_forward_numba(np.zeros((1, 1, 1, 2)), k, v)[0]
    array([[[[2., 1.]]]])
    """
    assert not causal or q.shape[-2] <= k.shape[-2], "queries are the last Tq of Tk positions"
    out = np.empty(q.shape, dtype=q.dtype)  # (B, H, Tq, hs)
    lse = np.empty(q.shape[:-1], dtype=q.dtype)  # (B, H, Tq)
    _forward_rows(q, k, v, causal, out, lse)
    return out, lse


# The backward, per query row i, with p_ij = exp(s_ij - lse_i) rebuilt from the forward's lse:
#   out_i = sum_j p_ij v_j       =>  dv_j += p_ij dout_i,   dp_ij = dout_i . v_j
#   p_i = softmax(s_i)           =>  ds_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij') = p_ij (dp_ij - di)
#     where the sum is dout_i . sum_j' p_ij' v_j' = dout_i . out_i =: di, one number per row
#   s_ij = q_i . k_j / sqrt(hs)   =>  dq_i += ds_ij k_j / sqrt(hs),   dk_j += ds_ij q_i / sqrt(hs)
@njit(cache=True, fastmath=FASTMATH)
def _row_backward(qi, dout_i, di, lse_i, k, v, n_keys, dq_i, dk, dv):
    """One query row's share of the gradients, over the keys j < n_keys it saw.

    qi (hs,) the query / sqrt(hs), dout_i (hs,), di = dout_i . out_i, k, v (Tk, hs) -> dq_i (hs,)
    written (still to be divided by sqrt(hs)); dk, dv (Tk, hs) added into.
    """
    dq_i[:] = 0.0
    for j in range(n_keys):  # loop 2: the keys this row attended to
        p = exp(_dot(qi, k[j]) - lse_i)  # in the forward: p = exp(s - m) / l = exp(s - lse)
        ds = p * (_dot(dout_i, v[j]) - di)  # ds_ij = p_ij (dp_ij - di)
        for d in range(qi.shape[0]):  # loop 3: three axpys, fused
            dv[j, d] += p * dout_i[d]
            dk[j, d] += ds * qi[d]  # qi is q_i / sqrt(hs) already
            dq_i[d] += ds * k[j, d]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _backward_rows(dout, q, k, v, out, lse, causal, dq, dk, dv):
    """Gradients for _forward_rows, arrays as there; dq written, dk and dv (zeros) added into."""
    B, H, Tq, hs = q.shape
    scale = q.dtype.type(1.0 / np.sqrt(hs))
    for bh in prange(B * H):  # each (batch, head) owns its dq, dk, dv: no write conflicts
        b, h = bh // H, bh % H
        kh, vh = _contiguous(k[b, h]), _contiguous(v[b, h])  # (Tk, hs) each
        qi = np.empty(hs, dtype=q.dtype)  # (hs,)
        for i in range(Tq):  # loop 1: query rows
            _scaled_copy(q[b, h, i], scale, qi)
            dout_i = _contiguous(dout[b, h, i])  # (hs,)
            n_keys = _visible_keys(i, Tq, k.shape[2], causal)
            di = _dot(dout_i, out[b, h, i])
            _row_backward(qi, dout_i, di, lse[b, h, i], kh, vh, n_keys,
                          dq[b, h, i], dk[b, h], dv[b, h])
            _scaled_copy(dq[b, h, i], scale, dq[b, h, i])  # dq_i = sum_j ds_ij k_j / sqrt(hs)


def attention_backward_numba(dout, q, k, v, out, lse, causal=True):
    """Same contract as attention_backward_ref. -> dq (B,H,Tq,hs), dk, dv (B,H,Tk,hs)."""
    dq = np.empty(q.shape, dtype=q.dtype)  # (B, H, Tq, hs)
    dk, dv = np.zeros(k.shape, dtype=q.dtype), np.zeros(v.shape, dtype=q.dtype)  # (B, H, Tk, hs)
    _backward_rows(dout, q, k, v, out, lse, causal, dq, dk, dv)
    return dq, dk, dv


# --- which version runs ---

# Version 3 pays a fixed cost per head (padded copies, transposes, blocks of 8 query rows) that
# a decoding step's one query does not repay. Measured at 6 heads, hs = 64, 32 to 256 cached
# keys, one thread: version 2 takes about 0.15x version 3's time for 1 query (and half the
# NumPy reference's), 0.4-0.6x for 4 queries, 0.7-1.1x for 8.
FEW_QUERIES = 4


def attention_forward_fast(q, k, v, causal=True):
    """What the numba backend runs: version 2 for up to FEW_QUERIES queries, else version 3."""
    if q.shape[-2] <= FEW_QUERIES:
        return attention_forward_numba(q, k, v, causal)
    return attention_forward_tiled(q, k, v, causal)


# The backward always runs version 3: training has as many queries as keys.
attention_backward_fast = attention_backward_tiled
