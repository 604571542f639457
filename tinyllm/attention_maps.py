"""Where each head looks: the attention probabilities that the fused kernel never stores.

`F.scaled_dot_product_attention` computes softmax(q k^T / sqrt(hs)) v blockwise and keeps only
the log-sum-exp of each row, which is what makes it fast and lean, so the (T, T) matrix of
probabilities a picture needs never exists. Here the model's forward pass is spelled out once
more, piece by piece, for one short prompt: the same modules run the embeddings, norms, MLPs
and projections, and only attention is written out in plain NumPy,

    probs = softmax(q k^T / sqrt(hs) + mask),   mask = -inf above the diagonal (the future),
    y = probs v,

so the probabilities can be kept. Continuing each block with y gives the next layer's input, and
at the end the logits, which must equal `model(idx)`'s: that is the check that what is drawn is
what the model computes.

Shapes: L layers, H heads, T prompt tokens, C channels (n_embd), hs head size, V vocabulary.
Left out: batches (one prompt at a time) and dropout (this is the eval-mode forward).
"""
import math

import numpy as np

from autograd import Tensor, no_grad
from autograd import functional as F


def attention_probabilities(model, idx):
    """The attention probabilities of every layer and head for one prompt.

    idx (T,) token ids -> probs (L, H, T, T): row t is how query t spreads over keys 0..t.
    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.model import GPT
    >>> model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=2, n_head=2, n_embd=8))
    >>> probs = attention_probabilities(model, [1, 2, 3])
    >>> probs.shape, bool(np.allclose(probs.sum(-1), 1.0)), float(probs[0, 0, 0, 1])
    ((2, 2, 3, 3), True, 0.0)
    """
    return manual_forward(model, idx)[0]


def manual_forward(model, idx):
    """GPT.forward in eval mode, attention written out: idx (T,) -> probs (L, H, T, T) and
    logits (T, V), the latter equal to model(idx[None])'s up to rounding."""
    idx = model._check_ids(np.asarray(idx)[None])  # (1, T); the model's own validation
    T = idx.shape[1]
    rope = None if model.rope is None else (model.rope[0][:T], model.rope[1][:T])
    body, maps = model.transformer, []
    with no_grad():
        x = _embed(model, idx)  # (1, T, C)
        for block in body.h:
            probs, y = _attention(block.attn, block.ln_1(x), rope)  # (H, T, T), (1, T, C)
            x = x + block.attn.c_proj(y)  # (1, T, C): the residual branch, as Block.forward
            x = x + block.mlp(block.ln_2(x))  # (1, T, C)
            maps.append(probs)
        logits = model.lm_head(body.ln_f(x))  # (1, T, V)
    return np.stack(maps), logits.data[0]  # (L, H, T, T), (T, V)


def _embed(model, idx):
    """Token embeddings plus the position vectors of positions 0..T-1 (none for rope, which
    rotates q and k inside attention instead). idx (1, T) -> (1, T, C)."""
    body, T = model.transformer, idx.shape[1]
    x = body.wte(idx)  # (1, T, C)
    if model.config.pos == "learned":
        return x + body.wpe.weight[:T]  # (T, C) broadcast over the batch of one
    if model.config.pos == "sinusoidal":
        return x + model.pos_table[:T]
    return x


def _attention(attn, x, rope):
    """CausalSelfAttention.forward with the probabilities kept. x (1, T, C) -> probs (H, T, T)
    and y (1, T, C), the heads' outputs side by side, ready for c_proj."""
    _, T, C = x.shape
    H = attn.n_head
    hs = C // H
    qkv = attn.c_attn(x).data.reshape(T, 3, H, hs).transpose(1, 2, 0, 3)  # (3, H, T, hs)
    q, k, v = qkv[0], qkv[1], qkv[2]  # (H, T, hs) each
    if rope is not None:
        q, k = F.rotary(Tensor(q), *rope).data, F.rotary(Tensor(k), *rope).data
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(hs)  # (H, T, T): query t against key s
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # (T, T): s > t may not be seen
    scores[:, future] = -np.inf  # exp(-inf) = 0; the diagonal keeps every row's max finite
    probs = F.softmax(Tensor(scores)).data  # (H, T, T), rows summing to 1
    y = (probs @ v).transpose(1, 0, 2).reshape(1, T, C)  # (H, T, hs) -> (1, T, C)
    return probs, Tensor(y)
