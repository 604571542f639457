"""The GPT: a stack of pre-norm transformer blocks over token (and position) embeddings.

Follows GPT-2 (Radford et al., 2019) as nanoGPT writes it: each block is
    x = x + attn(norm(x));   x = x + mlp(norm(x))
so the residual stream carries the signal straight from the embeddings to the last norm and the
output head, which reuses the token embedding matrix (weight tying). Variants switch in LLaMA's
choices one at a time: RoPE positions, RMSNorm, SwiGLU.

Parameter names and shapes are Hugging Face's GPT-2 layout (`transformer.h.0.attn.c_attn.weight`
of shape (C, 3C), since our Linear stores (in, out) as GPT-2's Conv1D does), so a GPT-2 state
dict loads without renaming.

Shapes: B batch, T time, C channels (n_embd), H heads, hs head size, V vocabulary.
Left out: attention-probability dropout (the fused attention kernel never materialises the
probabilities; dropout is applied on the embeddings and each residual branch instead).
"""
import math

import numpy as np

from autograd import functional as F
from autograd import nn
from tinyllm.config import GPTConfig
from tinyllm.positions import rope_tables, sinusoidal_table


def _norm(config, dtype):
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, dtype=dtype)
    return nn.LayerNorm(config.n_embd, bias=config.bias, dtype=dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head attention in which each position attends to itself and the positions before."""

    def __init__(self, config, rng, dtype):
        C = config.n_embd
        self.n_head = config.n_head
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias, rng=rng, dtype=dtype)  # q, k, v
        self.c_proj = nn.Linear(C, C, bias=config.bias, rng=rng, dtype=dtype)

    def forward(self, x, rope=None, kv=None):
        qkv = self.c_attn(x)  # (B, T, 3C)
        if rope is None and kv is None:  # training and evaluation: one fused graph node
            return self.c_proj(F.causal_self_attention(qkv, self.n_head))
        return self.c_proj(self._split_heads_attention(qkv, rope, kv))

    def _split_heads_attention(self, qkv, rope, kv):
        """causal_self_attention spelt out, with room to rotate q and k or extend k and v."""
        B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        H = self.n_head
        qkv = qkv.reshape(B, T, 3, H, C // H)  # (B, T, 3, H, hs)
        qkv = qkv.transpose(2, 0, 3, 1, 4)  # (3, B, H, T, hs): heads become a batch axis
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, T, hs) each
        if rope is not None:
            q, k = F.rotary(q, *rope), F.rotary(k, *rope)
        if kv is not None:  # a LayerCache: attend to the cached positions too (kv_cache.py)
            k, v = kv.append(k.data, v.data)  # (B, H, P + T, hs) each; queries are the last T
        y = F.scaled_dot_product_attention(q, k, v, causal=True)  # (B, H, T, hs)
        return y.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C): heads side by side again


class MLP(nn.Module):
    """Position-wise feed-forward: expand, nonlinearity, project back."""

    def __init__(self, config, rng, dtype):
        C = config.n_embd
        self.swiglu = config.mlp == "swiglu"
        hidden, width = _mlp_sizes(config)
        self.c_fc = nn.Linear(C, width, bias=config.bias, rng=rng, dtype=dtype)
        self.c_proj = nn.Linear(hidden, C, bias=config.bias, rng=rng, dtype=dtype)

    def forward(self, x):
        h = self.c_fc(x)  # (B, T, 4C) or (B, T, 2 hidden)
        if self.swiglu:
            gate, value = h.split(2, axis=-1)  # (B, T, hidden) each
            h = F.silu(gate) * value  # Shazeer (2020): a learned, smooth gate on each unit
        else:
            h = F.gelu(h)
        return self.c_proj(h)  # (B, T, C)


def _mlp_sizes(config):
    """(hidden units, width of c_fc's output) of the MLP."""
    C = config.n_embd
    if config.mlp != "swiglu":
        return 4 * C, 4 * C
    # SwiGLU has two input matrices (gate and value), so LLaMA shrinks the hidden size to
    # 2/3 of 4C to keep the parameter count; rounded up to a multiple of 8.
    hidden = 8 * math.ceil(8 * C / 3 / 8)
    return hidden, 2 * hidden  # gate and value computed in one matmul


class Block(nn.Module):
    def __init__(self, config, rng, dtype):
        self.ln_1 = _norm(config, dtype)
        self.attn = CausalSelfAttention(config, rng, dtype)
        self.ln_2 = _norm(config, dtype)
        self.mlp = MLP(config, rng, dtype)
        self.drop = nn.Dropout(config.dropout, rng=rng)

    def forward(self, x, rope=None, kv=None):
        x = x + self.drop(self.attn(self.ln_1(x), rope, kv))  # (B, T, C)
        return x + self.drop(self.mlp(self.ln_2(x)))  # (B, T, C)


class Transformer(nn.Module):
    """The body: embeddings, blocks, final norm. Named as GPT-2's `transformer` submodule."""

    def __init__(self, config, rng, dtype):
        self.wte = nn.Embedding(config.vocab_size, config.n_embd, rng=rng, dtype=dtype)
        if config.pos == "learned":
            self.wpe = nn.Embedding(config.block_size, config.n_embd, rng=rng, dtype=dtype)
        self.drop = nn.Dropout(config.dropout, rng=rng)
        self.h = nn.ModuleList(Block(config, rng, dtype) for _ in range(config.n_layer))
        self.ln_f = _norm(config, dtype)


class LMHead(nn.Module):
    """Logits = x @ weight^T with weight (V, C): the token embedding's layout, so they can tie."""

    def __init__(self, config, rng, dtype):
        shape = (config.vocab_size, config.n_embd)
        self.weight = nn.Parameter(rng.standard_normal(shape).astype(dtype))

    def forward(self, x):
        return x @ self.weight.T  # (B, T, C) @ (C, V) -> (B, T, V)


class GPT(nn.Module):
    """GPT(config, rng): `model(idx, targets)` -> (logits (B, T, V), mean loss or None).

    >>> model = GPT(GPTConfig(vocab_size=65), rng=np.random.default_rng(0))
    >>> logits, loss = model(np.zeros((1, 8), dtype=np.int64), np.ones((1, 8), dtype=np.int64))
    """

    def __init__(self, config, rng=None, dtype=np.float32):
        rng = np.random.default_rng() if rng is None else rng
        self.config = config
        self.transformer = Transformer(config, rng, dtype)
        self.lm_head = LMHead(config, rng, dtype)
        if config.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self._init_gpt2(rng)
        T = config.block_size
        self.pos_table = None  # (T, C), fixed, for sinusoidal positions
        self.rope = None  # (cos, sin), each (T, hs/2), for rotary positions
        if config.pos == "sinusoidal":
            self.pos_table = sinusoidal_table(T, config.n_embd, dtype)
        elif config.pos == "rope":
            self.rope = rope_tables(T, config.head_size, dtype)

    def _init_gpt2(self, rng):
        """GPT-2's initialisation: weights N(0, 0.02), biases 0, and the projections that write
        into the residual stream scaled by 1/sqrt(2 n_layer), since each block adds two of them
        to the stream and the variances add up."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                p.data[...] = rng.normal(0.0, residual_std, p.shape)
            elif p.ndim == 2:
                p.data[...] = rng.normal(0.0, 0.02, p.shape)
            elif name.endswith(".bias"):
                p.data[...] = 0.0

    def forward(self, idx, targets=None, cache=None):
        """idx (B, T) -> logits (B, T, V), loss. With a KVCache (kv_cache.py), idx continues
        the cached positions: its tokens sit at positions P .. P+T-1, P = cache.length."""
        start = 0 if cache is None else cache.length
        idx = self._check_ids(idx, start)
        here = slice(start, start + idx.shape[1])  # the absolute positions of idx's tokens
        body = self.transformer
        x = body.wte(idx)  # (B, T, C)
        if self.config.pos == "learned":
            x = x + body.wpe.weight[here]  # (T, C) broadcast over the batch
        elif self.config.pos == "sinusoidal":
            x = x + self.pos_table[here]
        rope = None if self.rope is None else (self.rope[0][here], self.rope[1][here])
        x = body.drop(x)
        layers = [None] * len(body.h) if cache is None else cache.layers
        for block, kv in zip(body.h, layers):
            x = block(x, rope, kv)  # (B, T, C)
        logits = self.lm_head(body.ln_f(x))  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss

    def _check_ids(self, idx, start=0):
        idx = np.asarray(idx)
        if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"idx must be a (B, T) integer array, got {idx.dtype} {idx.shape}")
        if start + idx.shape[1] > self.config.block_size:
            raise ValueError(f"sequence of length {start + idx.shape[1]} exceeds block_size "
                             f"{self.config.block_size}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}), "
                             f"got {idx.min()}..{idx.max()}")
        return idx

    def num_params(self, non_embedding=False):
        """Number of parameters (tied weights once). non_embedding drops the position table,
        which is looked up, not multiplied, as nanoGPT counts for its FLOP estimate."""
        n = sum(p.size for p in self.parameters())
        if non_embedding and self.config.pos == "learned":
            n -= self.transformer.wpe.weight.size
        return n

    def flops_per_token(self):
        """Training FLOPs per token: 6N for the matmuls forward and backward (2 per weight per
        token forward, 4 backward) plus attention's 12 L C T for q k^T and p v (PaLM, App. B)."""
        cfg = self.config
        attention = 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
        return 6 * self.num_params(non_embedding=True) + attention


def expected_shapes(config):
    """{state_dict name: shape} of GPT(config), worked out without building the model, so that
    a file's arrays can be checked against its config before anything is allocated. Tied
    weights are listed under both names, as state_dict() lists them.

    >>> shapes = expected_shapes(GPTConfig(vocab_size=65, n_layer=1, n_head=2, n_embd=8))
    >>> len(shapes), shapes["transformer.h.0.mlp.c_fc.weight"], shapes["lm_head.weight"]
    (17, (8, 32), (65, 8))
    """
    C, (hidden, width) = config.n_embd, _mlp_sizes(config)
    norm = ("weight", "bias") if config.norm == "layernorm" and config.bias else ("weight",)
    block = {f"{ln}.{p}": (C,) for ln in ("ln_1", "ln_2") for p in norm}
    for name, n_in, n_out in (("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C),
                              ("mlp.c_fc", C, width), ("mlp.c_proj", hidden, C)):
        block[f"{name}.weight"] = (n_in, n_out)  # Linear stores (in, out)
        if config.bias:
            block[f"{name}.bias"] = (n_out,)
    shapes = {"transformer.wte.weight": (config.vocab_size, C)}
    if config.pos == "learned":
        shapes["transformer.wpe.weight"] = (config.block_size, C)
    for i in range(config.n_layer):
        shapes.update({f"transformer.h.{i}.{name}": s for name, s in block.items()})
    shapes.update({f"transformer.ln_f.{p}": (C,) for p in norm})
    shapes["lm_head.weight"] = (config.vocab_size, C)
    return shapes


def tied_names(config):
    """{name: the name it shares its array with} for GPT(config)'s tied weights.

    >>> tied_names(GPTConfig(tie_weights=True))
    {'lm_head.weight': 'transformer.wte.weight'}
    """
    return {"lm_head.weight": "transformer.wte.weight"} if config.tie_weights else {}
