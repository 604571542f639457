"""The KV cache: decoding one token at a time without recomputing the past.

In a causal transformer the key and value of position j depend only on the tokens at positions
<= j. So when a token is appended, the keys and values of every earlier position are exactly
what they were one step before: only the new position's need computing, and its query attends
to the stored ones. A decoding step then costs one token's worth of matmuls, not the whole
context's. The price is memory: 2 n_layer C numbers per position and sequence (Pope et al.,
2022, "Efficiently Scaling Transformer Inference", weigh it against batch size and length).

Generation is a prefill (the prompt in one pass, filling the cache) followed by steps that each
run one token. `GPT.forward(idx, cache=cache)` does the bookkeeping: idx continues the cached
positions, learned and sinusoidal tables and RoPE angles are indexed by absolute position, and
each layer appends its new keys and values through `LayerCache.append`.

The window is block_size positions, the longest context the model was trained on. When it is
full, `slide` keeps the newest half and makes room for the next block_size / 2 tokens:
- learned and sinusoidal positions recompute: the kept tokens move to positions 0, 1, ..., and
  since their position vectors were added to the residual stream, every layer's keys and values
  change; the kept half is run again (one prefill per block_size / 2 tokens);
- rope keeps the cache: a position enters only as a rotation of q and k, so rotating each kept
  key back by the number of dropped positions (llama.cpp's "context shift" does the same) moves
  it to its new position without running the model. This is exact for one layer. In deeper
  layers the kept keys and values still carry what their tokens attended to before the slide,
  so the logits are no longer those of re-running the window (the receptive field grows with
  depth, as in Mistral's sliding-window attention); Xiao et al. (2023, StreamingLLM) show that
  such windows can degrade once the first tokens are evicted.
Halving, rather than dropping one token per step, is what makes sliding cheap for recomputing
schemes; the context the model sees then varies between block_size / 2 and block_size.

Shapes: B batch, H heads, T new positions, P cached positions, hs head size, V vocabulary.
Left out: ragged batches (prompts of different lengths), paged or quantised caches, grouped-query
attention, gradients through the cache (it is for inference; training never uses it).
"""
import numpy as np

from autograd import Tensor, no_grad
from autograd import functional as F


class LayerCache:
    """One layer's keys and values: buffers (B, H, capacity, hs), the first `length` filled."""

    def __init__(self, B, H, capacity, hs, dtype):
        self.k = np.zeros((B, H, capacity, hs), dtype)  # (B, H, capacity, hs)
        self.v = np.zeros((B, H, capacity, hs), dtype)  # (B, H, capacity, hs)
        self.length = 0

    def append(self, k, v):
        """Store the new keys and values k, v (B, H, T, hs) after the cached ones; return all
        of them so far, each (B, H, P + T, hs), for the new queries to attend to."""
        end = self.length + k.shape[2]
        if end > self.k.shape[2]:
            raise ValueError(f"the cache holds {self.k.shape[2]} positions, {end} requested")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]  # (B, H, P + T, hs) each, views

    def drop_oldest(self, n):
        """Forget the n oldest positions; the others move to the front (keys not re-rotated)."""
        keep = self.length - n
        self.k[:, :, :keep] = self.k[:, :, n:self.length]  # NumPy copies overlapping ranges safely
        self.v[:, :, :keep] = self.v[:, :, n:self.length]
        self.length = keep


class KVCache:
    """Every layer's keys and values for a batch of B sequences decoded together.

    `length` positions of the window are filled; `seen` counts the tokens of the sequence the
    cache has consumed, including those that slid out of the window.
    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.model import GPT
    >>> config = GPTConfig(vocab_size=5, block_size=8, n_layer=2, n_head=2, n_embd=8)
    >>> cache = KVCache(GPT(config, np.random.default_rng(0)), batch_size=1)
    >>> len(cache.layers), cache.layers[0].k.shape, cache.length   # (B, H, block_size, hs)
    (2, (1, 2, 8, 4), 0)
    """

    def __init__(self, model, batch_size):
        cfg = model.config
        dtype = model.lm_head.weight.dtype
        self.layers = [LayerCache(batch_size, cfg.n_head, cfg.block_size, cfg.head_size, dtype)
                       for _ in range(cfg.n_layer)]
        self.capacity = cfg.block_size
        self.seen = 0

    @property
    def length(self):
        """Positions filled; also the absolute position (in the window) of the next token."""
        return self.layers[0].length

    def rewind(self, n):
        """Forget the n newest tokens (speculative decoding's rejected drafts)."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot rewind {n} of {self.length} cached positions")
        for layer in self.layers:
            layer.length -= n
        self.seen -= n


def extend(model, cache, seq):
    """Run the tokens of seq (B, L) the cache has not seen yet; return their logits (B, n, V).

    The cache must hold a window of seq's first `cache.seen` tokens (so seq only ever grows),
    and seq must have at least one more. Chunks fill the window up to block_size, sliding it
    whenever it is full.
    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.model import GPT
    >>> config = GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8)
    >>> model = GPT(config, np.random.default_rng(0))
    >>> seq = np.array([[1, 2, 3, 4]])   # (B, L) = (1, 4)
    >>> cache = KVCache(model, batch_size=1)
    >>> extend(model, cache, seq[:, :3]).shape   # prefill: the prompt's 3 tokens in one pass
    (1, 3, 5)
    >>> step = extend(model, cache, seq)   # a step: only the 4th token runs
    >>> step.shape, cache.seen, cache.length
    ((1, 1, 5), 4, 4)
    >>> with no_grad():
    ...     full, _ = model(seq)   # (1, 4, 5): the whole sequence rerun from scratch
    >>> bool(np.allclose(step[:, -1], full.data[:, -1], atol=1e-5))
    True
    """
    out = []
    while cache.seen < seq.shape[1]:
        n = min(seq.shape[1] - cache.seen, room(model, cache, seq))
        with no_grad():
            logits, _ = model(seq[:, cache.seen:cache.seen + n], cache=cache)  # (B, n, V)
        cache.seen += n
        out.append(logits.data)
    return np.concatenate(out, axis=1)  # (B, n, V)


def room(model, cache, seq):
    """Free positions in the window, sliding it first if there are none. seq (B, L) as extend."""
    if cache.length == cache.capacity:
        slide(model, cache, seq[:, :cache.seen])
    return cache.capacity - cache.length


def slide(model, cache, history):
    """Drop the oldest positions of the window, keeping the newest capacity // 2 of them.

    history (B, seen): the tokens the cache has consumed; it holds the last `length` of them.
    RoPE rotates the kept keys to their new positions; other schemes recompute the kept tokens.
    """
    keep = cache.capacity // 2
    drop = cache.length - keep
    if model.rope is not None:
        cos, sin = model.rope  # (block_size, hs/2) each
        for layer in cache.layers:
            layer.drop_oldest(drop)
            # rotating by -drop * frequency, i.e. cos the same and sin negated, takes a key
            # rotated for position p to one rotated for position p - drop
            keys = layer.k[:, :, :keep]  # (B, H, keep, hs)
            keys[...] = F.rotary(Tensor(keys), cos[drop], -sin[drop]).data
    else:
        for layer in cache.layers:
            layer.length = 0
        if keep:
            with no_grad():
                model(history[:, history.shape[1] - keep:], cache=cache)
