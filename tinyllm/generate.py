"""Sampling text from a trained model, one token at a time.

Autoregressive generation: run the model on the context, turn the last position's logits into
a probability distribution, draw the next token, append it, repeat. Three knobs shape the draw,
applied in this order:
- temperature divides the logits: below 1 sharpens the distribution, above 1 flattens it, and 0
  means always the most likely token (greedy decoding);
- top-k keeps only the k most likely tokens (Fan et al., 2018);
- top-p, "nucleus sampling" (Holtzman et al., 2020), keeps the smallest set of most likely
  tokens whose probabilities add up to at least p, so the cut adapts to how sure the model is.
The surviving probabilities are renormalised and one token is drawn by inverting the cumulative
distribution with one uniform number per row.

Each step either reruns the whole context, cropped to block_size (use_cache=False, the plain
version), or runs only the new token against the keys and values cached from before
(kv_cache.py): the same logits, for one token's work instead of the context's. The two agree
while the sequence fits in block_size; past it they crop differently (kv_cache.py says how).
A cached step of a single prompt runs, unless fast=False, as one compiled call per block
(decode.py): the same logits as the graph path, without its per-op Python overhead.

Shapes: B batch of prompts of equal length, T time, V vocabulary.
Left out: repetition penalties, beam search, min-p, prompts of different lengths in one batch.
"""
import codecs

import numpy as np

from autograd import no_grad
from tinyllm.decode import fast_decoder
from tinyllm.kv_cache import KVCache, extend


def probabilities(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution (B, V) the next token is drawn from, given logits (B, V).

    Temperature 0 gives the one-hot distribution of the argmax (greedy).
    >>> probabilities(np.array([[2.0, 1.0, 0.0]]), top_k=2).round(3)   # e^2 : e^1 : 0
    array([[0.731, 0.269, 0.   ]])
    >>> probabilities(np.array([[2.0, 1.0, 0.0]]), temperature=0)
    array([[1., 0., 0.]])
    """
    _check_sampling(temperature, top_k, top_p)
    logits = np.asarray(logits, dtype=np.float64)  # (B, V); float64: top-p sums are exact-ish
    if temperature == 0:
        return np.eye(logits.shape[-1])[logits.argmax(axis=-1)]  # (B, V) one-hot
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        logits = _top_k(logits, top_k)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (B, V)
    p /= p.sum(axis=-1, keepdims=True)
    return p if top_p is None else _top_p(p, top_p)


def _check_sampling(temperature, top_k, top_p):
    if not temperature >= 0:  # also catches nan
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def _top_k(logits, k):
    """-inf everywhere but the k largest logits of each row: exactly k survive, ties or not."""
    keep = np.argpartition(logits, -k, axis=-1)[:, -k:]  # (B, k) indices, in no order
    out = np.full_like(logits, -np.inf)  # (B, V)
    np.put_along_axis(out, keep, np.take_along_axis(logits, keep, axis=-1), axis=-1)
    return out


def _top_p(p, top_p):
    """Keep the most likely tokens until their mass reaches top_p, then renormalise.

    A token survives when the mass of the tokens ranked above it is still below top_p: so the
    most likely one always does, and the set stops at the first token that reaches top_p.
    >>> _top_p(np.array([[0.5, 0.3, 0.2]]), 0.7)   # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: keep two
    array([[0.625, 0.375, 0.   ]])
    """
    order = np.argsort(-p, axis=-1, kind="stable")  # (B, V) most likely first
    ranked = np.take_along_axis(p, order, axis=-1)  # (B, V) sorted descending
    above = np.cumsum(ranked, axis=-1) - ranked  # (B, V) mass ranked strictly above each
    kept = np.zeros_like(p)
    np.put_along_axis(kept, order, np.where(above < top_p, ranked, 0.0), axis=-1)
    return kept / kept.sum(axis=-1, keepdims=True)  # (B, V)


def draw(p, rng):
    """One index per row of p (B, V), with probability proportional to p. -> (B,)

    Inverse-CDF sampling: the first index whose cumulative weight exceeds a uniform u in [0, 1).
    Dividing by the last cumulative sum makes it exactly 1, so u < 1 always finds an index, and
    an index of zero weight never comes first.
    >>> p = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])   # a sure thing; a coin flip of 0, 2
    >>> draw(p, np.random.default_rng(0))
    array([1, 0])
    """
    cdf = np.cumsum(p, axis=-1)  # (B, V)
    cdf /= cdf[:, -1:]
    u = rng.random((p.shape[0], 1))  # (B, 1)
    return (cdf <= u).sum(axis=-1)  # (B,)


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """One token id per row from logits (B, V): greedy at temperature 0, else sampled. -> (B,)"""
    if temperature == 0:
        return np.asarray(logits).argmax(axis=-1)  # (B,) no randomness, no rng needed
    rng = np.random.default_rng() if rng is None else rng
    return draw(probabilities(logits, temperature, top_k, top_p), rng)


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, rng=None,
             use_cache=True, stop=None, fast=True):
    """Yield (B,) arrays of new token ids, one per step, continuing the prompts idx (B, T).

    stop: a token id or a list of them; generation ends after the step at which every row has
    produced one (rows that stopped earlier keep sampling; drop what follows their stop).
    fast: cached steps of one prompt through decode.py's compiled path; False: the graph's.
    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.model import GPT
    >>> config = GPTConfig(vocab_size=5, block_size=16, n_layer=1, n_head=1, n_embd=8)
    >>> model = GPT(config, np.random.default_rng(0))
    >>> prompt = np.array([[1, 2]])   # (B, T) = (1, 2)
    >>> tokens = np.stack(list(generate(model, prompt, 6, temperature=0)), axis=1)  # (1, 6)
    >>> plain = np.stack(list(generate(model, prompt, 6, temperature=0, use_cache=False)), 1)
    >>> tokens.shape, bool((tokens == plain).all())   # the cache saves work, same tokens
    ((1, 6), True)
    """
    rng = np.random.default_rng() if rng is None else rng
    seq = check_prompt(idx)  # (B, T)
    cache = KVCache(model, seq.shape[0]) if use_cache else None
    stopped = np.zeros(seq.shape[0], dtype=bool)  # (B,)
    model.eval()
    decoder = fast_decoder(model, cache) if fast else None  # None: not a case it covers
    for _ in range(max_new_tokens):
        logits = _next_logits(model, seq, cache, decoder)  # (B, V)
        token = sample_next(logits, temperature, top_k, top_p, rng)  # (B,)
        seq = np.concatenate([seq, token[:, None]], axis=1)  # (B, T + 1)
        yield token
        stopped |= np.isin(token, [] if stop is None else stop)
        if stopped.all():
            return


def _next_logits(model, seq, cache, decoder):
    """Logits (B, V) for the token after seq (B, L): from the cache (through the compiled
    decoder if there is one), or by rerunning the last block_size tokens. (The no_grad stays
    inside: a generator must not hold it across yields.)"""
    if decoder is not None:
        return decoder.extend(seq, last=True)[:, -1]
    if cache is not None:
        return extend(model, cache, seq)[:, -1]
    with no_grad():
        logits, _ = model(seq[:, -model.config.block_size:])  # (B, <= block_size, V)
    return logits.data[:, -1]


def check_prompt(idx):
    """idx as a (B, T) int64 array, T >= 1. (The model checks the ids against its vocabulary.)"""
    idx = np.asarray(idx)
    if idx.ndim != 2 or idx.shape[1] == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"prompts must be a (B, T) integer array with T >= 1, got "
                         f"{idx.dtype} {idx.shape}")
    return idx.astype(np.int64)


def text_decoder(tokenizer):
    """decode(ids, final=False) -> str, for text that arrives a few tokens at a time. A
    byte-level token may end inside a UTF-8 character, so bytes go through an incremental
    decoder, which holds a partial character back until the token that completes it.

    >>> from tinyllm.tokenizer import BPETokenizer
    >>> decode = text_decoder(BPETokenizer({}))   # no merges: one token per byte
    >>> [decode([b]) for b in "é!".encode("utf-8")]
    ['', 'é', '!']
    """
    if not hasattr(tokenizer, "decode_bytes"):
        return lambda ids, final=False: tokenizer.decode(ids)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return lambda ids, final=False: utf8.decode(tokenizer.decode_bytes(ids), final=final)
