"""Layer ops with PyTorch's names: softmax, cross_entropy, layer_norm, gelu, attention, ...

These are the ops a transformer spends its time in. Each could be written as a chain of
primitives from `ops.py` (and `gradcheck` would pass), but a chain stores every intermediate
array and walks the graph node by node. Instead each op here is one graph node whose forward
and backward are a fused kernel pair from `autograd.kernels` (plain arrays in, plain arrays
out), so the switch `autograd.kernels.use("numpy" | "numba")` swaps the arithmetic under them.

Shapes: B batch, T time, C channels, H heads, hs head size, N rows, V classes (vocabulary).
Left out: the exact erf GELU (GPT-2 uses the tanh form), attention masks other than causal.
"""
import numpy as np

from . import kernels
from .kernels.dropout import keep_threshold, random_bits
from .ops import as_tensor, getitem, linear  # noqa: F401  (linear: PyTorch's name)
from .tensor import Tensor


def _along(kernel, axis, *arrays):
    """Run a last-axis kernel along `axis`: move that axis last, run, move it back."""
    if axis % arrays[0].ndim == arrays[0].ndim - 1:
        return kernel(*arrays)
    moved = [np.ascontiguousarray(np.moveaxis(a, axis, -1)) for a in arrays]
    return np.moveaxis(kernel(*moved), -1, axis)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`. x (..., V) -> (..., V), rows summing to 1."""
    y = _along(kernels.softmax_forward, axis, x.data)

    def backward(dout):  # dx = y * (dout - sum(dout * y))  (kernels/softmax.py derives it)
        x.accumulate(_along(kernels.softmax_backward, axis, dout, y))

    return Tensor.from_op(y, (x,), backward)


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along `axis`: log-probabilities, computed without overflow."""
    y = _along(kernels.log_softmax_forward, axis, x.data)

    def backward(dout):  # dx = dout - softmax(x) * sum(dout)
        x.accumulate(_along(kernels.log_softmax_backward, axis, dout, y))

    return Tensor.from_op(y, (x,), backward)


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """-log softmax(logits)[target] at every position whose target is not ignore_index.

    logits (N, V) or (B, T, V); targets (N,) or (B, T) integers. `reduction` (PyTorch's):
    "mean" over the counted positions -> a 0-d tensor, defined as 0 (with zero gradient) when
    every position is ignored; "sum" -> 0-d; "none" -> targets' shape, 0 at ignored positions.
    >>> cross_entropy(Tensor(np.zeros((2, 4))), np.array([1, 3]))   # log 4
    Tensor(array(1.38629436))
    >>> cross_entropy(Tensor(np.zeros((2, 4))), np.array([1, -100]), reduction="none")
    Tensor(array([1.38629436, 0.        ]))
    """
    V = logits.shape[-1]
    flat = logits.data.reshape(-1, V)  # (N, V)
    t = _check_targets(targets, logits.shape[:-1], V, ignore_index)  # (N,)
    loss, lse = kernels.cross_entropy_forward(flat, t, ignore_index, reduction)
    per_row = loss.ndim == 1  # reduction "none": loss (N,) goes back to targets' shape

    def backward(dout):  # d loss_n / d logits_n = softmax_n - onehot(t_n), scaled in the kernel
        dout = dout.reshape(-1) if per_row else dout  # (N,) or ()
        dlogits = kernels.cross_entropy_backward(dout, flat, t, lse, ignore_index, reduction)
        logits.accumulate(dlogits.reshape(logits.shape))  # (N, V) -> logits' shape

    out = loss.reshape(logits.shape[:-1]) if per_row else loss  # (B, T), (N,) or ()
    return Tensor.from_op(out, (logits,), backward)


def _check_targets(targets, shape, V, ignore_index):
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if t.shape != shape:
        raise ValueError(f"targets have shape {t.shape}, logits need {shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"targets must be integers, got {t.dtype}")
    t = t.reshape(-1)  # (N,)
    bad = (t != ignore_index) & ((t < 0) | (t >= V))
    if bad.any():
        raise IndexError(f"target {t[bad][0]} is outside the {V} classes")
    return t


def layer_norm(x, weight, bias, eps=1e-5):
    """Normalise each row of x to mean 0, variance 1, then scale and shift.

    x (..., C), weight (C,), bias (C,) or None -> (..., C).
    """
    out, mu, rstd = kernels.layer_norm_forward(x.data, weight.data, _opt(bias), eps)

    def backward(dout):
        dx, dw, db = kernels.layer_norm_backward(dout, x.data, weight.data, mu, rstd)
        x.accumulate(dx)
        weight.accumulate(dw)
        if bias is not None:
            bias.accumulate(db)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(out, parents, backward)


def _opt(t):
    return None if t is None else t.data


def rms_norm(x, weight, eps=1e-5):
    """Scale each row of x to root-mean-square 1, then by weight (no centring, no bias).

    x (..., C), weight (C,) -> (..., C).
    """
    out, rstd = kernels.rms_norm_forward(x.data, weight.data, eps)

    def backward(dout):
        dx, dw = kernels.rms_norm_backward(dout, x.data, weight.data, rstd)
        x.accumulate(dx)
        weight.accumulate(dw)

    return Tensor.from_op(out, (x, weight), backward)


def gelu(x):
    """GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def backward(dout):
        x.accumulate(kernels.gelu_backward(dout, x.data))

    return Tensor.from_op(kernels.gelu_forward(x.data), (x,), backward)


def silu(x):
    """x * sigmoid(x) (also called swish), the gate of SwiGLU."""
    s = 0.5 * (1.0 + np.tanh(0.5 * x.data))  # sigmoid(x), written so exp cannot overflow

    def backward(dout):  # d(x s)/dx = s + x s' and s' = s (1 - s)
        x.accumulate(dout * (s + x.data * s * (1.0 - s)))

    return Tensor.from_op(x.data * s, (x,), backward)


def dropout(x, p, training=True, rng=None):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout),
    so the expected value is unchanged and evaluation needs no rescaling. Identity when not
    training or p == 0. `rng` (np.random.Generator) makes the masks reproducible.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    rng = np.random.default_rng() if rng is None else rng
    # element i is kept when bits[i] >= threshold: with probability 1 - p (kernels/dropout.py)
    bits, threshold = random_bits(x.shape, rng), keep_threshold(p)  # bits: x's shape, uint32
    scale = 1.0 / (1.0 - p)

    def backward(dout):  # out = x keep scale => dx = dout keep scale: the same map on dout
        x.accumulate(kernels.dropout_backward(dout, bits, threshold, scale))

    return Tensor.from_op(kernels.dropout_forward(x.data, bits, threshold, scale), (x,), backward)


def embedding(ids, weight):
    """Rows of `weight` picked by integer `ids`: ids (B, T), weight (V, C) -> (B, T, C).

    The backward is getitem's: each row's gradient is the sum over every position that used it.
    """
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"ids must be integers, got {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= weight.shape[0]):
        raise IndexError(f"ids must lie in [0, {weight.shape[0]}), got {ids.min()}..{ids.max()}")
    return getitem(weight, ids)


def scaled_dot_product_attention(q, k, v, causal=True):
    """softmax(q k^T / sqrt(hs) [+ causal mask]) v, per batch and head.

    q (B, H, Tq, hs), k and v (B, H, Tk, hs) -> (B, H, Tq, hs). With Tq < Tk the queries are the
    last Tq positions (a KV-cached decoding step) and the causal mask is offset to match.
    """
    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    _check_attention_shapes(q.shape, k.shape, v.shape, causal)
    out, lse = kernels.attention_forward(q.data, k.data, v.data, causal)

    def backward(dout):
        dq, dk, dv = kernels.attention_backward(dout, q.data, k.data, v.data, out, lse, causal)
        q.accumulate(dq)
        k.accumulate(dk)
        v.accumulate(dv)

    return Tensor.from_op(out, (q, k, v), backward)


def causal_self_attention(qkv, n_head):
    """Multi-head causal self-attention straight from the packed projection: one graph node.

    qkv (B, T, 3C), q, k and v side by side (each C = n_head heads of hs) -> (B, T, C), the
    heads side by side again. The same numbers as splitting qkv, moving heads to a batch axis,
    scaled_dot_product_attention and moving them back, but those seven movement nodes (three
    slices, two transposes, two reshapes) become views the kernel reads through, and their
    backward, which zeroed a (B, T, 3C) gradient and added three strided slabs into it, becomes
    three slab copies into one fresh array.
    """
    B, T, C3 = qkv.shape
    if C3 % (3 * n_head):
        raise ValueError(f"qkv's last axis ({C3}) must be 3 * n_head * head size, n_head={n_head}")
    H, hs = n_head, C3 // (3 * n_head)
    heads = qkv.data.reshape(B, T, 3, H, hs).transpose(2, 0, 3, 1, 4)  # (3, B, H, T, hs) view
    q, k, v = heads[0], heads[1], heads[2]  # (B, H, T, hs) each, strided: no copy
    out, lse = kernels.attention_forward(q, k, v, True)  # (B, H, T, hs), (B, H, T)

    def backward(dout):  # sdpa's backward, the movements undone by viewing, not by nodes
        dheads = dout.reshape(B, T, H, hs).transpose(0, 2, 1, 3)  # (B, H, T, hs) view
        dq, dk, dv = kernels.attention_backward(dheads, q, k, v, out, lse, True)
        dqkv = np.empty((B, T, 3, H, hs), dtype=out.dtype)  # (B, T, 3, H, hs) = (B, T, 3C)
        for i, d in enumerate((dq, dk, dv)):
            dqkv[:, :, i] = d.transpose(0, 2, 1, 3)  # (B, T, H, hs) slab of q, k or v
        qkv.accumulate(dqkv.reshape(B, T, C3))

    y = out.transpose(0, 2, 1, 3).reshape(B, T, H * hs)  # (B, T, C): one copy
    return Tensor.from_op(y, (qkv,), backward)


def rotary(x, cos, sin):
    """Rotate each channel pair (j, j + hs/2) of x by its position's angle (RoPE, Su et al. 2021).

    x (..., T, hs); cos, sin (T, hs/2), the cosines and sines of position * frequency_j.
    A query and key rotated this way have a dot product that depends only on their distance.
    """
    half = x.shape[-1] // 2
    x1, x2 = x.data[..., :half], x.data[..., half:]  # (..., T, hs/2) each
    out = np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)  # (..., T, hs)

    def backward(dout):
        # a rotation's inverse is its transpose, a rotation by the opposite angle:
        # dx1 = d1 cos + d2 sin,  dx2 = -d1 sin + d2 cos
        d1, d2 = dout[..., :half], dout[..., half:]
        x.accumulate(np.concatenate([d1 * cos + d2 * sin, d2 * cos - d1 * sin], axis=-1))

    return Tensor.from_op(out, (x,), backward)


def _check_attention_shapes(qs, ks, vs, causal):
    if len(qs) != 4 or ks != vs or qs[:2] + qs[3:] != ks[:2] + ks[3:]:
        raise ValueError(f"attention needs q (B,H,Tq,hs), k = v (B,H,Tk,hs); got {qs}, {ks}, {vs}")
    if causal and qs[2] > ks[2]:
        raise ValueError(f"causal attention needs Tq <= Tk, got Tq={qs[2]}, Tk={ks[2]}")
