"""Decoding at the speed of memory: a cached step of a few tokens as one compiled call per block.

A cached decoding step runs one token through the model: every weight matrix is multiplied by
one vector, so the step reads each weight once and does 2 FLOPs with it. Its floor is the time
to stream the weights from memory (GPT-2 124M: ~500 MB of float32 per token). The graph path,
`GPT.forward(idx, cache=cache)`, is far from that floor on small models: it builds a graph node
per op (cProfile counts 1,801 Python function calls in a step of the shakespeare-char model),
and each of its ~20 kernels per block may wake the other core's thread (~100 us on our VM if
it has gone to sleep, see autograd/kernels/gemv.py). Here one block's whole step is one Numba
function on plain arrays (22 Python calls a step), written to mirror `Block.forward`:
    x = x + c_proj(attention(ln_1(x)))      x = x + mlp(ln_2(x))
with the products of autograd/kernels/gemv.py, which read int8 weights (tinyllm/quantize.py)
as int8: a quarter of the bytes.

The step takes T new tokens at once, T = 1 when decoding; a few more for a short prompt or a
speculative verify pass, where each weight, read once, serves T tokens (gemv.py): GPT-2's blocks
in int8 take 6x a single token's time for 16 tokens (ad hoc). Up to FEW_TOKENS: a long prompt
goes through the graph path, whose matrix-matrix products BLAS does faster. Both share the KV
cache (kv_cache.py), and a full window slides through kv_cache.room as there. So the two paths
can alternate on one cache, and they compute the same logits (tests/tinyllm/test_decode.py: to
1e-5 of their scale in float32, and the same greedy tokens).

Shapes: T new tokens, C channels, H heads, hs head size (C = H hs), F the width of the MLP's
first layer (4C, or twice SwiGLU's hidden size), P cache positions (block_size), V vocabulary.
Left out: batches (a row each; speculative decoding and chat decode one sequence), dropout
(inference only), LoRA adapters (merge them first: their models take the graph path).
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
    """One block for T new tokens at positions pos..pos+T-1: x (T, C), the residual stream,
    updated in place and returned. Their keys and values go to those positions of k_cache,
    v_cache (H, P, hs), and token t attends to positions 0..pos+t. cos, sin (T, hs/2): their
    rotations (rope), else unused.
    """
    # x = x + c_proj(attention(ln_1(x)))
    h = _norm(x, b.ln_1_w, b.ln_1_b, variant)  # (T, C)
    qkv = _linear(h, b.c_attn_w, b.c_attn_scale, b.c_attn_b)  # (T, 3C)
    q, k, v = _heads(qkv, cos, sin, variant)  # (T, H, hs) each
    _store(k_cache, v_cache, pos, k, v)  # the cache now holds positions 0..pos+T-1
    y = _attend(q, k_cache, v_cache, pos)  # (T, H, hs)
    y = y.reshape(x.shape)  # (T, C): heads side by side
    x = _add(x, _linear(y, b.attn_proj_w, b.attn_proj_scale, b.attn_proj_b))  # (T, C)
    # x = x + mlp(ln_2(x))
    h = _norm(x, b.ln_2_w, b.ln_2_b, variant)  # (T, C)
    h = _linear(h, b.c_fc_w, b.c_fc_scale, b.c_fc_b)  # (T, F)
    h = _swiglu(h) if variant.swiglu else _gelu(h)  # (T, F/2) or (T, F)
    return _add(x, _linear(h, b.mlp_proj_w, b.mlp_proj_scale, b.mlp_proj_b))  # (T, C)


# The final norm and the output head, one function per layout of the head: two functions, not
# a flag, since a flag compiles both products into the one function (1.3-1.7 s more of a cold
# start's compiling, ad hoc).
@njit(cache=True, parallel=True, fastmath=FASTMATH)
def head_rows(x, ln_f_w, ln_f_b, head_w, head_scale, variant):
    """x (T, C) -> logits (T, V), head_w (V, C) as LMHead keeps it (GPT-2's is tied to the
    (V, C) embedding)."""
    return matvec_numba(head_w, _norm(x, ln_f_w, ln_f_b, variant), head_scale)  # (T, V)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def head_columns(x, ln_f_w, ln_f_b, head_w, head_scale, variant):
    """x (T, C) -> logits (T, V), head_w (C, V) as quantize.py stores the int8 copy: its columns
    stream faster (with prefetches spread through the loop, see gemv.py), 2.75 -> 1.7 ms for
    GPT-2's (ad hoc)."""
    return vecmat_numba(_norm(x, ln_f_w, ln_f_b, variant), head_w, head_scale)  # (T, V)


# --- the pieces, on the rows of T tokens; the norms sum in float64, as layer_norm.py does ---


@njit(inline="always")  # so that vecmat_numba's parallel loop lands in block_step (see there)
def _linear(x, w, scale, b):
    """A Linear layer: x (T, K) @ w (K, N), times the per-output scale, plus b (N,). -> (T, N)
    """
    out = vecmat_numba(x, w, scale)  # (T, N)
    for t in range(out.shape[0]):
        _add(out[t], b)
    return out


@njit(cache=True, fastmath=FASTMATH)
def _norm(x, w, b, variant):
    """LayerNorm (x - mean) rstd w + b, or RMSNorm x rstd w (the mean taken as 0, b zeros), with
    rstd = 1 / sqrt(mean((x - mean)^2) + eps), over each row. x (T, C) -> (T, C)"""
    T, C = x.shape
    out = np.empty_like(x)  # (T, C)
    for t in range(T):
        mean = 0.0
        if not variant.rmsnorm:
            for c in range(C):
                mean += x[t, c]
            mean /= C
        var = 0.0
        for c in range(C):
            var += (x[t, c] - mean) * (x[t, c] - mean)
        rstd = 1.0 / math.sqrt(var / C + variant.eps)
        for c in range(C):
            out[t, c] = (x[t, c] - mean) * rstd * w[c] + b[c]
    return out


@njit(cache=True, fastmath=FASTMATH)
def _add(x, y):
    """x + y, elementwise, in place into x (both of one shape, C-contiguous)."""
    flat_x, flat_y = x.ravel(), y.ravel()  # views
    for i in range(flat_x.shape[0]):
        flat_x[i] += flat_y[i]
    return x


@njit(cache=True)
def _heads(qkv, cos, sin, variant):
    """qkv (T, 3C) -> q, k, v (T, H, hs) each, as CausalSelfAttention's reshape; q and k
    rotated (rope). (Here, not in block_step: a branch there, even untaken, made its T > 1
    steps 2.5x slower, measured.)"""
    T, C, H = qkv.shape[0], qkv.shape[1] // 3, variant.n_head
    q = np.ascontiguousarray(qkv[:, :C]).reshape(T, H, C // H)
    k = np.ascontiguousarray(qkv[:, C:2 * C]).reshape(T, H, C // H)
    if variant.rope:
        _rotate(q, cos, sin)
        _rotate(k, cos, sin)
    return q, k, np.ascontiguousarray(qkv[:, 2 * C:]).reshape(T, H, C // H)


@njit(cache=True, fastmath=FASTMATH)
def _rotate(x, cos, sin):
    """RoPE in place: channel pair (j, j + hs/2) of every head of token t rotated by the angle
    whose cos and sin are cos[t], sin[t], as autograd.functional.rotary. x (T, H, hs), cos, sin
    (T, hs/2)."""
    half = x.shape[2] // 2
    for t in range(x.shape[0]):
        for h in range(x.shape[1]):
            for j in range(half):
                x1, x2 = x[t, h, j], x[t, h, j + half]
                x[t, h, j] = x1 * cos[t, j] - x2 * sin[t, j]
                x[t, h, j + half] = x1 * sin[t, j] + x2 * cos[t, j]


@njit(cache=True)
def _store(k_cache, v_cache, pos, k, v):
    """Write the new keys and values k, v (T, H, hs) at positions pos.. of the caches (H, P, hs).
    """
    for t in range(k.shape[0]):
        k_cache[:, pos + t] = k[t]
        v_cache[:, pos + t] = v[t]


# error_model="numpy" where a loop divides: Numba's default checks each division for zero (to
# raise ZeroDivisionError), which keeps LLVM from vectorising the loop; the divisors here are
# never zero (a sum holding exp(0) = 1, or 1 + exp(...)).
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _attend(q, k_cache, v_cache, pos):
    """softmax(q k^T / sqrt(hs)) v for queries q (T, H, hs) at positions pos..pos+T-1, each over
    the cached positions up to its own: the last T rows of causal attention. The caches
    (H, P, hs) -> (T, H, hs). Sums in q's dtype: hs terms per score, n per output."""
    T, H, hs = q.shape
    out = np.zeros_like(q)  # (T, H, hs)
    p = np.empty(pos + T, dtype=q.dtype)  # one head's scores, then its weights
    zero, scale = q.dtype.type(0.0), q.dtype.type(1.0 / math.sqrt(hs))
    for t in range(T):
        n = pos + t + 1  # the query at pos + t sees positions 0..pos+t
        for h in range(H):
            qh, keys, values, o = q[t, h], k_cache[h], v_cache[h], out[t, h]  # row views
            for j in range(n):  # pass 1: the scores q . k_j / sqrt(hs)
                key = keys[j]
                score = zero
                for d in range(hs):
                    score += qh[d] * key[d]
                p[j] = score * scale
            top = p[:n].max()
            total = zero
            for j in range(n):  # pass 2: exp(score - max) <= 1, never overflows
                p[j] = exp(p[j] - top)
                total += p[j]
            for j in range(n):  # pass 3: the values, weighted by p / sum(p)
                weight, value = p[j] / total, values[j]
                for d in range(hs):
                    o[d] += weight * value[d]
    return out


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")  # divides: see _attend
def _gelu(h):
    """tanh-GELU: 0.5 h (1 + tanh(u)) = h sigmoid(2u), u = sqrt(2/pi) (h + 0.044715 h^3), as
    autograd/kernels/gelu.py. h (T, F) -> (T, F)"""
    out = np.empty_like(h)  # (T, F)
    flat_h, flat_out = h.ravel(), out.ravel()  # views
    for i in range(flat_h.shape[0]):
        v = flat_h[i]
        two_u = 2.0 * SQRT_2_OVER_PI * (v + GELU_COEF * v * v * v)
        flat_out[i] = v / (1.0 + exp(-two_u))
    return out


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")  # divides: see _attend
def _swiglu(h):
    """silu(gate) * value, gate and value the two halves of each row of h (T, F) -> (T, F/2);
    silu(g) = g sigmoid(g), as MLP.forward."""
    T, hidden = h.shape[0], h.shape[1] // 2
    out = np.empty((T, hidden), dtype=h.dtype)  # (T, F/2)
    for t in range(T):
        for i in range(hidden):
            gate = h[t, i]
            out[t, i] = gate / (1.0 + exp(-gate)) * h[t, hidden + i]
    return out


# --- the Python side: gather the arrays, run the blocks, keep the cache's books ---


# At most this many new tokens at once run through the compiled step; more through the graph
# path, where BLAS's matrix products win. Compiled over graph, a prompt of M tokens (last
# logits only, ad hoc, our Xeon), M = 16 / 24 / 32 / 48: GPT-2's shape int8 2.09 / 1.67 /
# 1.46 / 1.05x, float32 1.50 / 1.20 / 1.10 / 0.82x; shakespeare-char's int8 1.95 / 1.46 / 1.33
# / 0.95x, float32 1.50 / 1.08 / 1.08 / 0.74x.
FEW_TOKENS = 24


class Decoder:
    """The compiled step for one sequence of `model` over `cache`; built by fast_decoder.

    `extend` is a drop-in for kv_cache.extend(model, cache, seq): a few new tokens (one when
    decoding, a short prompt, a speculative verify pass) run here, more by the graph path.
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
        # (V, C) and (V,); int8: (C, V), quantize.py's layout
        self.head = _weight(model.lm_head.weight.data, HEAD, int8, axis=1)
        self.head_step = head_columns if HEAD in int8 else head_rows
        self.wte = body.wte.weight.data  # (V, C)
        # (block_size, C) added to the embeddings: learned or sinusoidal; None for rope
        self.positions = body.wpe.weight.data if cfg.pos == "learned" else model.pos_table

    def extend(self, seq, last=False):
        """Logits (1, n, V) of the n tokens of seq (1, L) the cache has not seen, as
        kv_cache.extend; last: of the last one only, (1, 1, V) (what sampling needs; the
        output head is the largest matrix). Up to FEW_TOKENS new tokens run here, in chunks
        that fit the window as kv_cache.extend's; more (a long prompt) by the graph path."""
        new = seq.shape[1] - self.cache.seen
        if seq.shape[0] != 1 or not 1 <= new <= FEW_TOKENS:
            logits = extend(self.model, self.cache, seq)  # (B, n, V)
            return logits[:, -1:] if last else logits
        chunks = []
        while self.cache.seen < seq.shape[1]:
            n = min(seq.shape[1] - self.cache.seen, room(self.model, self.cache, seq))
            chunks.append(self.step(seq[0, self.cache.seen:self.cache.seen + n], last))
            self.cache.seen += n
        return chunks[-1][None] if last else np.concatenate(chunks)[None]  # (1, n or 1, V)

    def step(self, tokens, last=False):
        """Logits (T, V) after each of tokens (T,), which take positions cache.length.. (the
        window must have room); the cache grows by them. last: of the last token only, (1, V).
        """
        tokens = np.asarray(tokens, dtype=np.int64)  # (T,)
        if tokens.min() < 0 or tokens.max() >= self.wte.shape[0]:
            raise ValueError(f"token ids must lie in [0, {self.wte.shape[0]}), got "
                             f"{tokens.min()}..{tokens.max()}")
        pos, T = self.cache.length, len(tokens)
        x = self.wte[tokens]  # (T, C) the tokens' embeddings, a copy
        if self.positions is not None:
            x += self.positions[pos:pos + T]  # (T, C)
        if self.variant.rope:
            cos, sin = (table[pos:pos + T] for table in self.model.rope)  # (T, hs/2) each
        else:
            cos = sin = x[:0]  # unused: empty, of x's dtype, so one compiled version serves
        for arrays, layer in zip(self.blocks, self.cache.layers):
            x = block_step(x, arrays, layer.k[0], layer.v[0], pos, cos, sin, self.variant)
            layer.length = pos + T
        x = x[-1:] if last else x  # (1 or T, C)
        return self.head_step(x, *self.ln_f, *self.head, self.variant)  # (1 or T, V)


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
