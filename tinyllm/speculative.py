"""Speculative decoding: a small draft model guesses k tokens, the large target checks them all
in one pass, and the output is distributed exactly as if the target had sampled alone.

Leviathan, Kalman & Matias (2023), "Fast Inference from Transformers via Speculative Decoding";
Chen et al. (2023), "Accelerating Large Language Model Decoding with Speculative Sampling".

Why it can be faster: one cached decoding step of the target mostly reads its weights (a
matrix-vector product per layer), so scoring k + 1 tokens in one call, each weight read once and
used k + 1 times, costs far less than k + 1 steps. If the cheap draft guesses well, each target
call yields several tokens.

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

Each model keeps its own KV cache (kv_cache.py); the draft's one-token steps and the target's
verify pass of k + 1 tokens run through the compiled path (decode.py) unless fast=False.
Rejected drafts are rewound out of the caches; the number drafted per round is capped so that no
window slides in the middle of a round (a slide cannot be rewound), which also makes the target
slide at exactly the tokens where plain cached generation would.

Shapes: V vocabulary, k drafted tokens; one sequence (B = 1).
Left out: batches (rows accept different numbers of tokens, so sequences would become ragged),
trees of drafts, choosing k adaptively, draft-free variants (Medusa, lookahead decoding).
"""
from functools import partial

import numpy as np

from autograd.kernels import threads
from tinyllm.decode import fast_decoder
from tinyllm.generate import check_prompt, draw, probabilities
from tinyllm.kv_cache import KVCache, extend, room


def speculative_generate(target, draft, idx, max_new_tokens, k=4, temperature=1.0, top_k=None,
                         top_p=None, rng=None, stop=None, stats=None, fast=True):
    """Yield (1,) arrays of new token ids, like `generate`, continuing the prompt idx (1, T).

    stats, if a dict, receives the counts "drafted", "accepted" and "target_calls" (target
    passes over new tokens: the prompt's, then one per round).
    >>> from tinyllm.generate import generate
    >>> from tinyllm.model import GPT, GPTConfig
    >>> big = GPT(GPTConfig(vocab_size=11, block_size=32, n_layer=2), np.random.default_rng(0))
    >>> small = GPT(GPTConfig(vocab_size=11, block_size=32, n_layer=1), np.random.default_rng(1))
    >>> idx, stats = np.array([[1, 2, 3]]), {}
    >>> out = list(speculative_generate(big, small, idx, 10, k=4, temperature=0, stats=stats))
    >>> [int(t[0]) for t in out] == [int(t[0]) for t in generate(big, idx, 10, temperature=0)]
    True
    >>> 0 <= stats["accepted"] <= stats["drafted"]   # accepted / drafted: the acceptance rate
    True
    """
    seq = _check(target, draft, idx, k)  # (1, T)
    rounds = _Rounds(target, draft, seq, rng, {} if stats is None else stats,
                     lambda logits: probabilities(logits, temperature, top_k, top_p), fast)
    stops = [] if stop is None else np.atleast_1d(stop)
    produced = 0
    while produced < max_new_tokens:
        new = rounds.run(seq, min(k, max_new_tokens - produced - 1))  # (n,)
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


class _Rounds:
    """The state of one speculative decoding: both models and their KV caches, the sampling
    rule `dist` ((n, V) logits -> (n, V) probabilities, as `generate` would draw from), the
    random generator and the counts reported in `stats`; fast: both models' steps compiled."""

    def __init__(self, target, draft, seq, rng, stats, dist, fast):
        self.target, self.draft, self.dist = target, draft, dist
        self.rng = np.random.default_rng() if rng is None else rng
        self.stats = stats
        stats.update(drafted=0, accepted=0, target_calls=0)
        self._prefill(seq, fast)

    def _prefill(self, seq, fast):
        """Fresh caches for both models, the target's holding all of the prompt but its last
        token: every round then starts with exactly one token (the newest) the target has not
        run."""
        self.target.eval()
        self.draft.eval()
        self.target_cache, self.draft_cache = KVCache(self.target, 1), KVCache(self.draft, 1)
        self.draft_extend = _extend(self.draft, self.draft_cache, fast)
        self.target_extend = _extend(self.target, self.target_cache, fast)
        if seq.shape[1] > 1:
            self.target_extend(seq[:, :-1])
            self.stats["target_calls"] += 1

    def run(self, seq, k):
        """Draft up to k tokens after seq (1, L), check them with one target pass; return the
        kept tokens (n,), n in 1..k+1, and rewind each cache to the tokens kept."""
        with threads.limited(1):  # the draft's steps are too small to split across cores
            q = self.dist(self.draft_extend(seq)[:, -1])  # (1, V)
        # the drafts, fed to the target after the newest token, must fit in its window; all
        # but the last draft are fed to the draft model
        k = min(k, room(self.target, self.target_cache, seq) - 1,
                self.draft_cache.capacity - self.draft_cache.length + 1)
        with threads.limited(1):
            drafts, qs = _draft(self.draft_extend, seq, q, k, self.dist, self.rng)  # (k,), (k, V)
        fed = np.concatenate([seq, drafts[None]], axis=1)  # (1, L + k)
        p = self.dist(self.target_extend(fed)[0])  # (k + 1, V)
        n, token = _accept(drafts, qs, p, self.rng)  # p: the target after each prefix
        self.target_cache.rewind(k - n)  # it ran the newest token and k drafts; keep n drafts
        self.draft_cache.rewind(max(0, k - 1 - n))  # it ran k - 1 drafts; keep up to n
        self.stats["drafted"] += k
        self.stats["accepted"] += n
        self.stats["target_calls"] += 1
        return np.append(drafts[:n], token)  # (n + 1,)


def _extend(model, cache, fast):
    """kv_cache.extend of model over cache: compiled (decode.py) if fast and it applies."""
    decoder = fast_decoder(model, cache) if fast else None
    return partial(extend, model, cache) if decoder is None else decoder.extend


def _draft(draft_extend, seq, q, k, dist, rng):
    """k tokens from the draft model, autoregressively, starting from its distribution q (1, V)
    after seq (1, L); draft_extend: kv_cache.extend of the draft and its cache. -> the tokens
    (k,) and the distributions they were drawn from (k, V)."""
    tokens, qs = [], []
    for i in range(k):
        if i:
            q = dist(draft_extend(np.append(seq, tokens)[None])[:, -1])  # (1, V)
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
