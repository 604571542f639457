"""tinyllm/generate.py: greedy is deterministic, cached and plain decoding agree, top-k keeps
exactly k, top-p the smallest set with mass >= p, draws follow the distribution, seeds reproduce,
stop tokens end generation."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd.testing import values
from tinyllm.generate import draw, generate, probabilities, sample_next
from tests.tinyllm.tiny_models import tiny_gpt

MODEL = tiny_gpt("learned", vocab_size=9, block_size=6, n_layer=1, n_embd=8, scale=1.0)
PROMPTS = np.array([[1, 2, 3], [4, 5, 6]])  # (B, T) two prompts of equal length


def run(model=MODEL, n=10, **kwargs):
    return np.stack(list(generate(model, PROMPTS, n, **kwargs)), 1)  # (B, n)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_is_deterministic_and_equals_top_1(use_cache):
    greedy = run(temperature=0, use_cache=use_cache)
    assert greedy.shape == (2, 10)  # past block_size too: the context is cropped
    np.testing.assert_array_equal(greedy, run(temperature=0, use_cache=use_cache))
    np.testing.assert_array_equal(greedy, run(temperature=1.0, top_k=1, use_cache=use_cache,
                                              rng=np.random.default_rng(5)))


@pytest.mark.parametrize("pos", ["learned", "rope", "sinusoidal"])
def test_cached_and_plain_decoding_agree_while_the_sequence_fits(pos):
    model = tiny_gpt(pos)  # block_size 8: prompt 3 + 6 new tokens, the last predicted from 8
    for kwargs in (dict(temperature=0), dict(temperature=1.0, top_p=0.9)):
        cached = run(model, 6, use_cache=True, rng=np.random.default_rng(1), **kwargs)
        plain = run(model, 6, use_cache=False, rng=np.random.default_rng(1), **kwargs)
        np.testing.assert_array_equal(cached, plain)


def test_seeded_sampling_reproduces():
    a = run(rng=np.random.default_rng(3), top_p=0.8)
    np.testing.assert_array_equal(a, run(rng=np.random.default_rng(3), top_p=0.8))
    assert not np.array_equal(a, run(rng=np.random.default_rng(4), top_p=0.8))


def test_generation_ends_once_every_row_has_stopped():
    greedy = run(temperature=0, n=10)  # (2, 10)
    first = greedy[0, 2]  # row 0 stops at step 2 or before; row 1 when it first samples it
    out = run(temperature=0, n=10, stop=[first])
    steps = [np.flatnonzero(row == first) for row in greedy]
    last = max(s[0] if len(s) else 9 for s in steps)
    np.testing.assert_array_equal(out, greedy[:, :last + 1])


@given(data=st.data(), k=st.integers(1, 12))
def test_top_k_keeps_exactly_the_k_largest(data, k):
    logits = data.draw(values((4, 12), -3, 3))
    logits[:, 1] = logits[:, 0]  # a tie, to make "exactly k" mean something
    p = probabilities(logits, temperature=0.7, top_k=k)  # (4, 12)
    kept = p > 0
    assert (kept.sum(axis=-1) == k).all()
    for row, keep in zip(logits, kept):
        assert row[keep].min() >= row[~keep].max(initial=-np.inf)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)


@given(data=st.data(), top_p=st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_most_likely_set_with_mass_at_least_p(data, top_p):
    logits = data.draw(values((4, 12), -4, 4))
    full = probabilities(logits)  # (4, 12) untruncated
    kept = probabilities(logits, top_p=top_p) > 0
    for q, keep in zip(full, kept):
        mass = q[keep].sum()
        assert mass >= top_p - 1e-12  # enough mass
        assert mass - q[keep].min() < top_p + 1e-12  # dropping any kept token: too little
        assert q[keep].min() >= q[~keep].max(initial=0.0)  # the most likely ones


def test_top_p_known_answer_and_order_of_filters():
    np.testing.assert_allclose(probabilities(np.log([[0.5, 0.3, 0.2]]), top_p=0.7),
                               [[0.625, 0.375, 0.0]])
    # top-k first (k=2 leaves 0.625 / 0.375), then top-p 0.6 keeps only the first
    np.testing.assert_allclose(probabilities(np.log([[0.5, 0.3, 0.2]]), top_k=2, top_p=0.6),
                               [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(probabilities([[1.0, 3.0, 2.0]], temperature=0), [[0, 1, 0]])


def test_draw_follows_the_distribution_and_never_picks_zero_weight():
    p = np.array([[0.2, 0.0, 0.5, 0.3, 0.0]])
    counts = np.bincount(np.concatenate([draw(p, np.random.default_rng(i)) for i in range(4000)]),
                         minlength=5)
    assert counts[1] == counts[4] == 0
    sigma = np.sqrt(4000 * p[0] * (1 - p[0]))  # binomial standard deviations
    assert (np.abs(counts - 4000 * p[0]) <= 5 * sigma).all()  # seeded: 5 sigma, not flaky
    assert draw(np.array([[0.0, 0.0, 1.0]]), np.random.default_rng(0))[0] == 2


def test_bad_sampling_settings_fail_clearly():
    for kwargs, message in [(dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"),
                            (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p")]:
        with pytest.raises(ValueError, match=message):
            sample_next(np.zeros((1, 3)), **kwargs)
    with pytest.raises(ValueError, match="T >= 1"):
        next(generate(MODEL, np.zeros((1, 0), dtype=np.int64), 3))
