"""tinyllm/speculative.py: greedy speculative decoding is the target's greedy decoding token for
token, and speculative sampling draws sequences from the target's distribution (a seeded
chi-square test against the exact distribution, enumerated with the target alone)."""
import itertools
import math

import numpy as np
import pytest

from tinyllm.generate import generate, probabilities
from tinyllm.speculative import speculative_generate
from tests.tinyllm.tiny_models import tiny_gpt

PROMPT = np.array([[1, 2, 3]])  # (1, T)


def tokens(generator):
    """The ids a generator of (1,) arrays yields, as one (n,) array."""
    return np.array([int(t[0]) for t in generator], dtype=np.int64)  # (n,)


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("pos", ["learned", "rope", "sinusoidal"])
def test_greedy_speculative_decoding_is_the_targets_greedy_decoding(pos, k):
    target = tiny_gpt(pos, seed=0)  # block_size 8: 40 tokens slide its window many times
    drafts = [tiny_gpt("learned", seed=1, n_layer=1, block_size=6),  # disagrees often
              tiny_gpt("rope", seed=2, n_layer=1, block_size=12), target]  # agrees always
    expected = tokens(generate(target, PROMPT, 40, temperature=0))
    for draft in drafts:
        stats = {}
        out = tokens(speculative_generate(target, draft, PROMPT, 40, k=k, temperature=0,
                                          stats=stats))
        np.testing.assert_array_equal(out, expected)
        assert stats["drafted"] >= stats["accepted"]
    assert stats["accepted"] == stats["drafted"]  # the target as its own draft


def test_greedy_counts_match_a_simulation_with_plain_greedy_decoding():
    # at temperature 0 a round accepts the longest prefix of the draft's greedy continuation
    # that the target's greedy continuation shares: replay that with `generate` alone
    target = tiny_gpt("learned", block_size=64)
    draft = tiny_gpt("learned", block_size=64)
    for p in draft.parameters():  # a perturbed copy: it agrees with the target often, not always
        p.data += np.random.default_rng(9).normal(0.0, 0.015, p.shape).astype(np.float32)
    stats, k, n = {}, 4, 40
    out = tokens(speculative_generate(target, draft, PROMPT, n, k=k, temperature=0, stats=stats))
    drafted = accepted = done = 0
    while done < n:
        prefix = np.concatenate([PROMPT, out[None, :done]], axis=1)
        guess = tokens(generate(draft, prefix, min(k, n - done - 1), temperature=0))
        agree = np.cumprod(guess == out[done:done + len(guess)]).sum()
        drafted, accepted, done = drafted + len(guess), accepted + agree, done + agree + 1
    assert (stats["drafted"], stats["accepted"]) == (drafted, accepted)
    assert 0 < accepted < drafted


def test_a_draft_equal_to_the_target_is_always_accepted_when_sampling():
    # p = q makes the acceptance probability min(1, p/q) = 1, at any temperature
    target = tiny_gpt("rope", block_size=40)  # no slide: rounds are never cut short
    stats = {}
    out = tokens(speculative_generate(target, target, PROMPT, 30, k=4, temperature=1.0,
                                      top_k=5, rng=np.random.default_rng(0), stats=stats))
    assert len(out) == 30 and stats["accepted"] == stats["drafted"]
    assert stats["target_calls"] == 1 + 6  # the prompt, then 6 rounds of 4 drafts + 1 bonus


def test_stop_and_bad_arguments():
    target, draft = tiny_gpt(seed=0), tiny_gpt(seed=1, n_layer=1)
    expected = tokens(generate(target, PROMPT, 20, temperature=0))
    out = tokens(speculative_generate(target, draft, PROMPT, 20, temperature=0,
                                      stop=expected[5]))
    np.testing.assert_array_equal(out, expected[:list(expected).index(expected[5]) + 1])
    with pytest.raises(ValueError, match="one prompt"):
        next(speculative_generate(target, draft, np.zeros((2, 3), dtype=np.int64), 5))
    with pytest.raises(ValueError, match="vocabularies differ"):
        next(speculative_generate(target, tiny_gpt(vocab_size=12), PROMPT, 5))


# --- the output distribution ---------------------------------------------------------------

V, N, RUNS = 3, 3, 3000  # 27 possible 3-token continuations, 3000 seeded runs
ALPHA = 1e-4  # the test's false-alarm rate for a correct sampler and a fresh seed


def exact_distribution(target, temperature, top_k, top_p):
    """P(continuation) for every one of the V^N continuations of [0], from the target alone:
    the product of its next-token distributions (block_size is long enough not to slide)."""
    seqs = np.array(list(itertools.product(range(V), repeat=N)))  # (V^N, N)
    idx = np.concatenate([np.zeros((len(seqs), 1), dtype=np.int64), seqs], axis=1)
    logits = target(idx[:, :-1])[0].data  # (V^N, N, V): position t predicts token t + 1
    p = probabilities(logits.reshape(-1, V), temperature, top_k, top_p).reshape(-1, N, V)
    return np.prod(np.take_along_axis(p, seqs[..., None], axis=-1)[..., 0], axis=1)  # (V^N,)


def chi2_sf(stat, dof):
    """P(X >= stat) for X chi-square with dof degrees of freedom: 1 minus the regularised lower
    incomplete gamma P(dof/2, stat/2), summed as its power series (fine for stat < ~1000)."""
    a, x = dof / 2, stat / 2
    term = total = 1.0 / a
    n = 0
    while term > 1e-17 * total:
        n += 1
        term *= x / (a + n)
        total += term
    return 1.0 - math.exp(a * math.log(x) - x - math.lgamma(a) + math.log(total))


def test_chi2_sf_known_values():
    assert abs(chi2_sf(3.841458820694124, 1) - 0.05) < 1e-9
    assert abs(chi2_sf(2.0, 2) - math.exp(-1.0)) < 1e-12  # dof 2: exp(-x/2)
    assert abs(chi2_sf(54.05196, 26) - 0.001) < 1e-6


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, None, None), (0.8, 2, 0.9)])
def test_speculative_sampling_draws_from_the_targets_distribution(temperature, top_k, top_p):
    target = tiny_gpt("learned", seed=3, vocab_size=V, n_layer=1, n_embd=8, scale=3.0)
    draft = tiny_gpt("rope", seed=4, vocab_size=V, n_layer=1, n_embd=8, scale=3.0)
    expected = exact_distribution(target, temperature, top_k, top_p)  # (V^N,)
    rng = np.random.default_rng(2024)
    counts = np.zeros(V ** N)
    for _ in range(RUNS):
        out = tokens(speculative_generate(target, draft, np.zeros((1, 1), dtype=np.int64), N,
                                          k=2, temperature=temperature, top_k=top_k,
                                          top_p=top_p, rng=rng))
        counts[np.ravel_multi_index(out, (V,) * N)] += 1
    possible = expected > 0
    assert counts[~possible].sum() == 0  # never a continuation the filters rule out
    assert (RUNS * expected[possible]).min() >= 5  # the chi-square approximation holds
    stat = ((counts - RUNS * expected)[possible] ** 2 / (RUNS * expected[possible])).sum()
    assert chi2_sf(stat, possible.sum() - 1) > ALPHA
