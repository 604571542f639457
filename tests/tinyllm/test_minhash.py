"""MinHash: the compiled shingling and signatures equal the references, and the estimate of
Jaccard similarity stays within its binomial bound."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data.minhash import (P, estimate_jaccard, jaccard, minhash_ref, normalize,
                                  permutations, shingle_hashes, shingle_hashes_ref, shingles,
                                  signatures)

units = st.sampled_from(["word", "char"])
# text with plenty of separators, accents and astral characters, as well as plain words
texts = st.one_of(st.text(), st.text(st.sampled_from(list("ab c,.-\n\u00e9\u0130\U0001f600"))))


def test_normalize_known_answers():
    assert normalize("\u00abBonjour\u00bb\u2014dit-il\u00a0!") == "bonjour dit il"
    assert normalize("  ,,  ") == ""
    assert shingles("One two, THREE.", n=2) == {"one two", "two three"}
    assert shingles("ab cd", n=3, unit="char") == {"ab ", "b c", " cd"}
    assert shingles("", n=3) == set()


@given(texts, st.integers(1, 6), units)
def test_compiled_shingle_hashes_equal_the_reference(text, n, unit):
    assert set(shingle_hashes(text, n, unit).tolist()) == shingle_hashes_ref(text, n, unit)


@given(texts, st.integers(1, 6), units)
def test_hashes_are_one_per_distinct_shingle(text, n, unit):
    # 31-bit hashes of a few hundred shingles: a collision here would be a 1-in-10^5 event
    assert len(shingle_hashes_ref(text, n, unit)) == len(shingles(text, n, unit))


@given(st.lists(texts, max_size=5), st.integers(1, 5), units, st.integers(0, 2**32))
def test_signatures_equal_the_numpy_reference(batch, n, unit, seed):
    sigs = signatures(batch, num_perm=16, n=n, unit=unit, seed=seed)
    a, b = permutations(16, seed)
    assert sigs.shape == (len(batch), 16) and sigs.dtype == np.uint32
    for text, sig in zip(batch, sigs):
        ref = minhash_ref(np.array(sorted(shingle_hashes_ref(text, n, unit))), a, b)
        np.testing.assert_array_equal(sig, ref)


def test_document_without_shingles_gets_p_everywhere():
    assert (signatures(["", " ... !"], num_perm=8) == P).all()


def _pair(common, only_a, only_b, rng):
    """Two documents of distinct words sharing `common` words; with n = 1 the shingles are the
    words, so J = common / (common + only_a + only_b) exactly."""
    words = [f"w{i}" for i in rng.permutation(common + only_a + only_b)]
    shared, rest = words[:common], words[common:]
    return " ".join(shared + rest[:only_a]), " ".join(shared + rest[only_a:])


@given(st.integers(0, 150), st.integers(0, 60), st.integers(0, 60), st.integers(0, 2**32))
def test_estimate_within_its_binomial_bound(common, only_a, only_b, seed):
    if common + only_a + only_b == 0:
        return
    a, b = _pair(common, only_a, only_b, np.random.default_rng(seed))
    exact = jaccard(shingles(a, n=1), shingles(b, n=1))
    assert exact == common / (common + only_a + only_b)
    k = 256
    sigs = signatures([a, b], num_perm=k, n=1, seed=seed)
    # the agreement count is Binomial(K, J): 5 standard deviations, plus one slot for rounding
    bound = 5 * math.sqrt(exact * (1 - exact) / k) + 1 / k
    assert abs(estimate_jaccard(*sigs) - exact) <= bound


@pytest.mark.parametrize("similarity", [0.2, 0.5, 0.8])
def test_estimate_is_unbiased_over_many_pairs(similarity):
    # 300 pairs with J exactly `similarity`: the mean estimate must be within 4 standard errors
    rng = np.random.default_rng(0)
    common = round(100 * similarity)
    pairs = [_pair(common, (100 - common) // 2, 100 - common - (100 - common) // 2, rng)
             for _ in range(300)]
    k = 64
    estimates = [estimate_jaccard(*signatures(list(p), num_perm=k, n=1, seed=s))
                 for s, p in enumerate(pairs)]
    standard_error = math.sqrt(similarity * (1 - similarity) / k / len(pairs))
    assert abs(np.mean(estimates) - similarity) <= 4 * standard_error


def test_identical_and_disjoint_documents():
    sigs = signatures(["one two three four five six", "One two; three four five six!",
                       "seven eight nine ten eleven twelve"], num_perm=128)
    assert estimate_jaccard(sigs[0], sigs[1]) == 1.0
    assert estimate_jaccard(sigs[0], sigs[2]) == 0.0


def test_unknown_unit_is_an_error():
    with pytest.raises(ValueError, match="unit"):
        signatures(["a"], unit="token")
    with pytest.raises(ValueError, match="unit"):
        shingles("a", unit="line")
