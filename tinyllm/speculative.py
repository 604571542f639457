"""Speculative decoding: a small draft model guesses k tokens, the large target checks them all
in one pass, and the output is distributed exactly as if the target had sampled alone.

Leviathan, Kalman & Matias (2023), "Fast Inference from Transformers via Speculative Decoding";
Chen et al. (2023), "Accelerating Large Language Model Decoding with Speculative Sampling".

Why it can be faster: one cached decoding step of the target mostly reads its weights (a
matrix-vector product per layer) and pays Python's per-op overhead, so scoring k + 1 tokens in
one call costs little more than scoring one. If the cheap draft guesses well, each target call
yields several tokens.

The rule, per drafted token x drawn from the draft's distribution q, where p is the target's
distribution at the same position: accept x with probability min(1, p(x) / q(x)); at the first
rejection draw instead from the residual max(0, p - q) / Z and stop. Then
    P(output = x) = q(x) min(1, p(x)/q(x)) + P(reject) max(0, p(x) - q(x)) / Z
                  = min(p(x), q(x)) + max(0, p(x) - q(x)) = p(x),
because P(reject) = 1 - sum_y min(p(y), q(y)) = Z. When all k drafts are accepted, the target's
distribution after the last one is already computed: a bonus token, k + 1 tokens for one call.
At temperature 0 both distributions are one-hot: a draft is accepted exactly when it is the
target's argmax and the residual is the target's argmax, so the output is the target's greedy
output, token for token.

Each model keeps its own KV cache (kv_cache.py). Rejected drafts are rewound out of the caches;
the number drafted per round is capped so that no window slides in the middle of a round (a
slide cannot be rewound), which also makes the target slide at exactly the tokens where plain
cached generation would.

Shapes: V vocabulary, k drafted tokens; one sequence (B = 1).
Left out: batches (rows accept different numbers of tokens, so sequences would become ragged),
trees of drafts, choosing k adaptively, draft-free variants (Medusa, lookahead decoding).
"""
import numpy as np

from autograd.kernels import threads
from tinyllm.generate import check_prompt, draw, probabilities
from tinyllm.kv_cache import KVCache, extend, room


def speculative_generate(target, draft, idx, max_new_tokens, k=4, temperature=1.0, top_k=None,
                         top_p=None, rng=None, stop=None, stats=None):
    """Yield (1,) arrays of new token ids, like `generate`, continuing the prompt idx (1, T).

    stats, if a dict, receives the counts "drafted", "accepted" and "target_calls" (target
    passes over new tokens: the prompt's, then one per round).
    >>> stats = {}
    >>> out = list(speculative_generate(big, small, idx, 100, k=4, temperature=0, stats=stats))
    >>> stats["accepted"] / stats["drafted"]   # the acceptance rate
    """
    rng = np.random.default_rng() if rng is None else rng
    seq = _check(target, draft, idx, k)  # (1, T)
    stats = {} if stats is None else stats
    stats.update(drafted=0, accepted=0, target_calls=0)
    caches = _prefill(target, draft, seq, stats)
    stops = [] if stop is None else np.atleast_1d(stop)

    def dist(logits):  # (n, V) -> (n, V): the distribution `generate` would draw from
        return probabilities(logits, temperature, top_k, top_p)

    produced = 0
    while produced < max_new_tokens:
        new = _round(target, draft, caches, seq, min(k, max_new_tokens - produced - 1), dist,
                     rng, stats)
        for token in new:
            yield np.array([token])
            if token in stops:
                return
        seq = np.concatenate([seq, new[None]], axis=1)  # (1, L + len(new))
        produced += len(new)


def _check(target, draft, idx, k):
    seq = check_prompt(idx)
    if seq.shape[0] != 1:
        raise ValueError(f"speculative decoding takes one prompt, got a batch of {seq.shape[0]}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(f"target and draft vocabularies differ: {target.config.vocab_size} "
                         f"and {draft.config.vocab_size} tokens")
    if k < 1:
        raise ValueError(f"k (tokens drafted per round) must be >= 1, got {k}")
    return seq


def _prefill(target, draft, seq, stats):
    """Fresh caches for both models, the target's holding all of the prompt but its last token:
    every round then starts with exactly one token (the newest) that the target has not run."""
    target.eval()
    draft.eval()
    caches = KVCache(target, 1), KVCache(draft, 1)
    if seq.shape[1] > 1:
        extend(target, caches[0], seq[:, :-1])
        stats["target_calls"] += 1
    return caches


def _round(target, draft, caches, seq, k, dist, rng, stats):
    """Draft up to k tokens, check them with one target pass; return the kept tokens (n,), n in
    1..k+1, and rewind each cache to the tokens kept."""
    target_cache, draft_cache = caches
    with threads.limited(1):  # the draft's steps are too small to split across cores
        q = dist(extend(draft, draft_cache, seq)[:, -1])  # (1, V): the draft has now seen seq
    # the drafts, fed to the target after the newest token, must fit in its window; all but the
    # last draft are fed to the draft model
    k = min(k, room(target, target_cache, seq) - 1,
            draft_cache.capacity - draft_cache.length + 1)
    with threads.limited(1):
        drafts, qs = _draft(draft, draft_cache, seq, q, k, dist, rng)  # (k,), (k, V)
    p = dist(extend(target, target_cache, np.concatenate([seq, drafts[None]], axis=1))[0])
    n, token = _accept(drafts, qs, p, rng)  # p (k + 1, V): the target after each prefix
    target_cache.rewind(k - n)  # it ran the newest token and k drafts; keep n drafts
    draft_cache.rewind(max(0, k - 1 - n))  # it ran k - 1 drafts; keep up to n of them
    stats["drafted"] += k
    stats["accepted"] += n
    stats["target_calls"] += 1
    return np.append(drafts[:n], token)  # (n + 1,)


def _draft(draft, cache, seq, q, k, dist, rng):
    """k tokens from the draft model, autoregressively, starting from its distribution q (1, V)
    after seq (1, L). -> the tokens (k,) and the distributions they were drawn from (k, V)."""
    tokens, qs = [], []
    for i in range(k):
        if i:
            q = dist(extend(draft, cache, np.append(seq, tokens)[None])[:, -1])  # (1, V)
        tokens.append(draw(q, rng)[0])
        qs.append(q[0])
    return np.array(tokens, dtype=np.int64), np.array(qs).reshape(k, q.shape[-1])


def _accept(drafts, qs, p, rng):
    """The accept/reject rule. drafts (k,), qs (k, V), p (k + 1, V) -> (n accepted, next token).

    Accept draft x with probability min(1, p(x)/q(x)): u q(x) < p(x) for u uniform in [0, 1).
    """
    for i, x in enumerate(drafts):
        if rng.random() * qs[i, x] >= p[i, x]:
            residual = np.maximum(p[i] - qs[i], 0.0)  # (V,) what p has that q over-drafted
            return i, draw(residual[None], rng)[0]
    return len(drafts), draw(p[-1:], rng)[0]  # all accepted: the bonus token
