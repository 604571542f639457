"""Sampling text from a trained model, one token at a time.

Autoregressive generation: run the model on the context, turn the last position's logits into
a probability distribution, draw the next token, append it, repeat. Two knobs shape the draw:
temperature divides the logits (below 1 sharpens the distribution, 0 means always the most
likely token), top-k keeps only the k most likely tokens before sampling.

This is the plain version: every step reruns the whole (cropped) context.
Shapes: B batch of prompts of equal length, T time, V vocabulary.
"""
import numpy as np

from autograd import no_grad


def sample_next(logits, temperature, top_k, rng):
    """One token id per row from logits (B, V): greedy at temperature 0, else sampled."""
    if temperature == 0:
        return logits.argmax(axis=-1)  # (B,)
    logits = logits / temperature  # (B, V)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k, None]  # (B, 1) k-th largest
        logits = np.where(logits < kth, -np.inf, logits)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (B, V)
    p /= p.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))  # (B, 1) inverse-CDF sampling, one uniform per row
    return np.minimum((p.cumsum(axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)  # (B,)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, rng=None):
    """Yield (B,) arrays of new token ids, one per step, continuing the prompts idx (B, T)."""
    rng = np.random.default_rng() if rng is None else rng
    idx = np.asarray(idx, dtype=np.int64)
    model.eval()
    with no_grad():
        for _ in range(max_new_tokens):
            context = idx[:, -model.config.block_size:]  # (B, <= block_size)
            logits, _ = model(context)
            token = sample_next(logits.data[:, -1, :], temperature, top_k, rng)  # (B,)
            idx = np.concatenate([idx, token[:, None]], axis=1)
            yield token
