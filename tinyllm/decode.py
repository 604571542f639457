"""Decoding at the speed of memory: a cached step of one token as one compiled call per block.

A cached decoding step runs one token through the model: every weight matrix is multiplied by
one vector, so the step reads each weight once and does 2 FLOPs with it. Its floor is the time
to stream the weights from memory (GPT-2 124M: ~500 MB of float32 per token). The graph path,
`GPT.forward(idx, cache=cache)`, is far from that floor on small models: it builds a graph node
per op (cProfile counts 1,801 Python function calls in a step of the shakespeare-char model),
and each of its ~20 kernels per block may wake the other core's thread (~100 us on our VM if
it has gone to sleep, see autograd/kernels/gemv.py). Here one block's whole step is one Numba
function on plain arrays (22 Python calls a step), written to mirror `Block.forward`:
    x = x + c_proj(attention(ln_1(x)))      x = x + mlp(ln_2(x))
with the matrix-vector products of autograd/kernels/gemv.py, which read int8 weights
(tinyllm/quantize.py) as int8: a quarter of the bytes.

It shares the KV cache (kv_cache.py) with the graph path: the prompt is prefilled by the graph
path (many tokens at once are matrix-matrix products, where BLAS shines), each new token is
decoded here, and a full window slides through kv_cache.room as before. So the two paths can
alternate on one cache, and they compute the same logits (tests/tinyllm/test_decode.py: to 1e-5
of their scale in float32, and the same greedy tokens).

Shapes: C channels, H heads, hs head size (C = H hs), F the width of the MLP's first layer (4C,
or twice SwiGLU's hidden size), P cache positions (block_size), V vocabulary.
Left out: batches (a row each; speculative decoding and chat decode one sequence), several new
tokens at once (that is the graph path's job), dropout (inference only), LoRA adapters (merge
them first: their models take the graph path).
"""
import math
from typing import NamedTuple

import numpy as np

from autograd import kernels, nn
from autograd.kernels.fast_exp import exp
from autograd.kernels.gelu import GELU_COEF, SQRT_2_OVER_PI
from autograd.kernels.gemv import matvec_numba, vecmat_numba
from autograd.kernels.numba_support import FASTMATH, njit
from tinyllm.kv_cache import extend, room
from tinyllm.quantize import BLOCK_WEIGHTS, HEAD, int8_weights


class BlockArrays(NamedTuple):
    """One block's parameters as plain arrays. Linear weights keep their (in, out) layout, as
    float or int8, each with a per-output scale (ones for float weights); absent biases (and
    RMSNorm's) are zeros, so one compiled function serves every variant."""
    ln_1_w: np.ndarray  # (C,)
    ln_1_b: np.ndarray  # (C,)
    c_attn_w: np.ndarray  # (C, 3C): q, k, v side by side
    c_attn_scale: np.ndarray  # (3C,)
    c_attn_b: np.ndarray  # (3C,)
    attn_proj_w: np.ndarray  # (C, C)
    attn_proj_scale: np.ndarray  # (C,)
    attn_proj_b: np.ndarray  # (C,)
    ln_2_w: np.ndarray  # (C,)
    ln_2_b: np.ndarray  # (C,)
    c_fc_w: np.ndarray  # (C, F)
    c_fc_scale: np.ndarray  # (F,)
    c_fc_b: np.ndarray  # (F,)
    mlp_proj_w: np.ndarray  # (F or F/2, C): SwiGLU's gate and value make one hidden unit
    mlp_proj_scale: np.ndarray  # (C,)
    mlp_proj_b: np.ndarray  # (C,)


class Variant(NamedTuple):
    """The model's architectural switches (GPTConfig), as the compiled code reads them."""
    n_head: int
    rmsnorm: bool  # else LayerNorm
    swiglu: bool  # else GELU
    rope: bool  # rotate q and k (learned and sinusoidal positions are added to the embedding)
    eps: float  # the norms' epsilon


# --- the compiled step: Block.forward for one token ---


# parallel=True: the matrix-vector products inline their parallel loops here (gemv.py), and
# Numba caches a compiled function that runs parallel code only if it is parallel itself. It
# would then also run array expressions (x + y) as parallel loops, waking threads for a few
# hundred numbers: so every elementwise step is a call of a plain compiled helper below.
@njit(cache=True, parallel=True, fastmath=FASTMATH)
def block_step(x, b, k_cache, v_cache, pos, cos, sin, variant):
    """One block for the token at position pos: x (C,), the residual stream, updated in place
    and returned. Its key and value go to position pos of k_cache, v_cache (H, P, hs), and it
    attends to positions 0..pos. cos, sin (hs/2,): position pos's rotation (rope), else unused.
    """
    # x = x + c_proj(attention(ln_1(x)))
    h = _norm(x, b.ln_1_w, b.ln_1_b, variant)  # (C,)
    qkv = _linear(h, b.c_attn_w, b.c_attn_scale, b.c_attn_b)  # (3C,)
    q, k, v = _heads(qkv, variant.n_head)  # (H, hs) each: CausalSelfAttention's reshape
    if variant.rope:
        _rotate(q, cos, sin)
        _rotate(k, cos, sin)
    _store(k_cache, v_cache, pos, k, v)  # the cache now holds positions 0..pos
    y = _attend(q, k_cache, v_cache, pos + 1).ravel()  # (H, hs) -> (C,): heads side by side
    x = _add(x, _linear(y, b.attn_proj_w, b.attn_proj_scale, b.attn_proj_b))  # (C,)
    # x = x + mlp(ln_2(x))
    h = _norm(x, b.ln_2_w, b.ln_2_b, variant)  # (C,)
    h = _linear(h, b.c_fc_w, b.c_fc_scale, b.c_fc_b)  # (F,)
    h = _swiglu(h) if variant.swiglu else _gelu(h)  # (F/2,) or (F,)
    return _add(x, _linear(h, b.mlp_proj_w, b.mlp_proj_scale, b.mlp_proj_b))  # (C,)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def head_step(x, ln_f_w, ln_f_b, head_w, head_scale, variant):
    """The final norm and the output head: x (C,) -> logits (V,). head_w (V, C), as LMHead."""
    return matvec_numba(head_w, _norm(x, ln_f_w, ln_f_b, variant), head_scale)  # (V,)


# --- the pieces, for one token; float64 sums, as autograd/kernels/layer_norm.py ---


@njit(inline="always")  # so that vecmat_numba's parallel loop lands in block_step (see there)
def _linear(x, w, scale, b):
    """A Linear layer on one token: x (K,) @ w (K, N), times the per-output scale, plus b (N,).
    """
    return _add(vecmat_numba(x, w, scale), b)  # (N,)


@njit(cache=True, fastmath=FASTMATH)
def _norm(x, w, b, variant):
    """LayerNorm (x - mean) rstd w + b, or RMSNorm x rstd w (the mean taken as 0, b zeros), with
    rstd = 1 / sqrt(mean((x - mean)^2) + eps). x (C,) -> (C,)"""
    C = x.shape[0]
    mean = 0.0
    if not variant.rmsnorm:
        for c in range(C):
            mean += x[c]
        mean /= C
    var = 0.0
    for c in range(C):
        var += (x[c] - mean) * (x[c] - mean)
    rstd = 1.0 / math.sqrt(var / C + variant.eps)
    out = np.empty_like(x)  # (C,)
    for c in range(C):
        out[c] = (x[c] - mean) * rstd * w[c] + b[c]
    return out


@njit(cache=True, fastmath=FASTMATH)
def _add(x, y):
    """x + y, elementwise, in place into x. (C,)"""
    for i in range(x.shape[0]):
        x[i] += y[i]
    return x


@njit(cache=True)
def _heads(qkv, H):
    """qkv (3C,) -> q, k, v (H, hs) each, views."""
    C = qkv.shape[0] // 3
    return (qkv[:C].reshape(H, C // H), qkv[C:2 * C].reshape(H, C // H),
            qkv[2 * C:].reshape(H, C // H))


@njit(cache=True, fastmath=FASTMATH)
def _rotate(x, cos, sin):
    """RoPE in place: channel pair (j, j + hs/2) of every head rotated by the angle whose cos
    and sin are given, as autograd.functional.rotary. x (H, hs), cos, sin (hs/2,)."""
    half = x.shape[1] // 2
    for h in range(x.shape[0]):
        for j in range(half):
            x1, x2 = x[h, j], x[h, j + half]
            x[h, j] = x1 * cos[j] - x2 * sin[j]
            x[h, j + half] = x1 * sin[j] + x2 * cos[j]


@njit(cache=True)
def _store(k_cache, v_cache, pos, k, v):
    """Write the new key and value k, v (H, hs) at position pos of the caches (H, P, hs)."""
    k_cache[:, pos] = k
    v_cache[:, pos] = v


# error_model="numpy" where a loop divides: Numba's default checks each division for zero (to
# raise ZeroDivisionError), which keeps LLVM from vectorising the loop; the divisors here are
# never zero (a sum holding exp(0) = 1, or 1 + exp(...)).
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _attend(q, k_cache, v_cache, n):
    """softmax(q k^T / sqrt(hs)) v of one query per head over the first n cached positions:
    the last row of causal attention. q (H, hs), caches (H, P, hs) -> (H, hs)."""
    H, hs = q.shape
    out = np.zeros_like(q)  # (H, hs)
    p = np.empty(n, dtype=q.dtype)  # (n,) one head's scores, then its weights
    for h in range(H):
        for j in range(n):  # pass 1: the scores q . k_j / sqrt(hs)
            score = 0.0
            for d in range(hs):
                score += q[h, d] * k_cache[h, j, d]
            p[j] = score / math.sqrt(hs)
        top = p.max()
        total = 0.0
        for j in range(n):  # pass 2: exp(score - max) <= 1, never overflows
            p[j] = exp(p[j] - top)
            total += p[j]
        for j in range(n):  # pass 3: the values, weighted by p / sum(p)
            weight = p[j] / total
            for d in range(hs):
                out[h, d] += weight * v_cache[h, j, d]
    return out


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")  # divides: see _attend
def _gelu(h):
    """tanh-GELU: 0.5 h (1 + tanh(u)) = h sigmoid(2u), u = sqrt(2/pi) (h + 0.044715 h^3), as
    autograd/kernels/gelu.py. h (F,) -> (F,)"""
    out = np.empty_like(h)  # (F,)
    for i in range(h.shape[0]):
        two_u = 2.0 * SQRT_2_OVER_PI * (h[i] + GELU_COEF * h[i] * h[i] * h[i])
        out[i] = h[i] / (1.0 + exp(-two_u))
    return out


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")  # divides: see _attend
def _swiglu(h):
    """silu(gate) * value, gate and value the two halves of h (F,) -> (F/2,); silu(g) =
    g sigmoid(g), as MLP.forward."""
    hidden = h.shape[0] // 2
    out = np.empty(hidden, dtype=h.dtype)  # (F/2,)
    for i in range(hidden):
        gate = h[i]
        out[i] = gate / (1.0 + exp(-gate)) * h[hidden + i]
    return out


# --- the Python side: gather the arrays, run the blocks, keep the cache's books ---


class Decoder:
    """The compiled step for one sequence of `model` over `cache`; built by fast_decoder.

    `extend` is a drop-in for kv_cache.extend(model, cache, seq): one new token is decoded here,
    more (a prompt, a speculative verify pass) by the graph path.
    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.kv_cache import KVCache
    >>> from tinyllm.model import GPT
    >>> config = GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=8)
    >>> model = GPT(config, np.random.default_rng(0)).eval()
    >>> seq = np.array([[1, 2, 3, 4]])   # (B, L) = (1, 4)
    >>> graph_cache, cache = KVCache(model, 1), KVCache(model, 1)
    >>> decoder = fast_decoder(model, cache)
    >>> _ = decoder.extend(seq[:, :3]), extend(model, graph_cache, seq[:, :3])   # prefills
    >>> fast, graph = decoder.extend(seq), extend(model, graph_cache, seq)   # one token each
    >>> fast.shape, bool(np.allclose(fast, graph, atol=1e-6)), cache.seen
    ((1, 1, 5), True, 4)
    """

    def __init__(self, model, cache):
        self.model, self.cache = model, cache
        body, cfg = model.transformer, model.config
        int8 = int8_weights(model)
        self.blocks = [_block_arrays(block, f"transformer.h.{i}.", int8)
                       for i, block in enumerate(body.h)]
        # every norm of the model is built alike (model.py's _norm), so ln_f's eps is theirs
        self.variant = Variant(cfg.n_head, cfg.norm == "rmsnorm", cfg.mlp == "swiglu",
                               cfg.pos == "rope", float(body.ln_f.eps))
        self.ln_f = _norm_arrays(body.ln_f)  # (C,), (C,)
        self.head = _weight(model.lm_head.weight.data, HEAD, int8, axis=1)  # (V, C), (V,)
        self.wte = body.wte.weight.data  # (V, C)
        # (block_size, C) added to the embeddings: learned or sinusoidal; None for rope
        self.positions = body.wpe.weight.data if cfg.pos == "learned" else model.pos_table

    def extend(self, seq):
        """Logits (1, n, V) of the tokens of seq (1, L) the cache has not seen: kv_cache.extend."""
        if seq.shape != (1, self.cache.seen + 1):  # not one new token: the graph path's job
            return extend(self.model, self.cache, seq)
        room(self.model, self.cache, seq)  # slides the window if it is full
        logits = self.step(int(seq[0, -1]))  # (V,)
        self.cache.seen += 1
        return logits[None, None]  # (1, 1, V)

    def step(self, token):
        """Logits (V,) after `token`, which takes position cache.length; the cache grows by it."""
        if not 0 <= token < self.wte.shape[0]:
            raise ValueError(f"token ids must lie in [0, {self.wte.shape[0]}), got {token}")
        pos = self.cache.length
        x = self.wte[token].copy()  # (C,) the token's embedding
        if self.positions is not None:
            x += self.positions[pos]  # (C,)
        if self.variant.rope:
            cos, sin = self.model.rope[0][pos], self.model.rope[1][pos]  # (hs/2,) each
        else:
            cos = sin = x[:0]  # unused: empty, of x's dtype, so one compiled version serves
        for arrays, layer in zip(self.blocks, self.cache.layers):
            x = block_step(x, arrays, layer.k[0], layer.v[0], pos, cos, sin, self.variant)
            layer.length = pos + 1
        return head_step(x, *self.ln_f, *self.head, self.variant)  # (V,)


def fast_decoder(model, cache):
    """A Decoder of model over cache, or None where the compiled path does not apply: no cache,
    a batch of several rows, the numpy kernel backend (the references were asked for), weights
    neither float32 nor float64, dropout in training mode, or layers other than the plain ones
    (LoRA adapters)."""
    if cache is None or cache.layers[0].k.shape[0] != 1 or kernels.backend() != "numba":
        return None
    if model.lm_head.weight.dtype not in (np.float32, np.float64):
        return None
    if model.training and model.config.dropout > 0:
        return None
    plain = (nn.Linear, nn.LayerNorm, nn.RMSNorm)
    for block in model.transformer.h:
        layers = (block.ln_1, block.attn.c_attn, block.attn.c_proj, block.ln_2, block.mlp.c_fc,
                  block.mlp.c_proj)
        if any(type(layer) not in plain for layer in layers):
            return None
    return Decoder(model, cache)


def _block_arrays(block, prefix, int8):
    """BlockArrays of one Block named `prefix`; int8: {parameter name: (q, scale)}."""
    modules = dict(block.named_modules())  # {"attn.c_attn": Linear, ...}
    fields = {}
    for field, name in zip(("c_attn", "attn_proj", "c_fc", "mlp_proj"), BLOCK_WEIGHTS):
        layer = modules[name.removesuffix(".weight")]
        fields[f"{field}_w"], fields[f"{field}_scale"] = _weight(layer.weight.data,
                                                                 prefix + name, int8, axis=0)
        fields[f"{field}_b"] = _bias(layer.bias, layer.weight.shape[1], layer.weight.dtype)
    for norm in ("ln_1", "ln_2"):
        fields[f"{norm}_w"], fields[f"{norm}_b"] = _norm_arrays(modules[norm])
    return BlockArrays(**fields)


def _weight(w, name, int8, axis):
    """(weights, scale): the int8 copy and its scales if `name` was quantized, else w and ones.
    axis: w's input axis, the one summed over (0 for a Linear's (in, out), 1 for the head)."""
    if name in int8:
        return int8[name]
    return np.ascontiguousarray(w), np.ones(w.shape[1 - axis], dtype=w.dtype)


def _bias(bias, n, dtype):
    """A Linear's or LayerNorm's bias (n,), zeros if it has none."""
    return np.zeros(n, dtype) if bias is None else bias.data


def _norm_arrays(norm):
    """(weight, bias), each (C,), of a LayerNorm or RMSNorm; RMSNorm's bias is zeros."""
    return norm.weight.data, _bias(getattr(norm, "bias", None), *norm.weight.shape,
                                   norm.weight.dtype)
