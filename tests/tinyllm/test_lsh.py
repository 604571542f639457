"""LSH: the band choice, candidate pairs against brute force, verification, clusters, and
planted near duplicates found among random documents."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data.lsh import (UnionFind, _error_area, candidate_pairs, choose_bands, keep_mask,
                              near_duplicate_mask, s_curve, verify)
from tinyllm.data.minhash import P, jaccard, shingle_hashes, shingles, signatures

seeds = st.integers(0, 2**32 - 1)


def test_s_curve_rises_through_its_threshold():
    s = np.linspace(0, 1, 101)
    p = s_curve(s, bands=20, rows=5)
    assert p[0] == 0.0 and p[-1] == 1.0 and (np.diff(p) >= 0).all()
    assert abs(s_curve((1 / 20) ** (1 / 5), 20, 5) - 0.64) < 0.01  # 1 - (1 - 1/b)^b


@pytest.mark.parametrize("threshold, num_perm", [(0.5, 64), (0.8, 128), (0.9, 256)])
def test_choose_bands_is_the_least_cost_option(threshold, num_perm):
    bands, rows = choose_bands(threshold, num_perm)
    assert bands * rows <= num_perm
    best = _error_area(threshold, bands, rows, 0.9)
    for b, r in [(bands + 1, rows), (bands - 1, rows), (bands, rows - 1), (bands, rows + 1)]:
        if b >= 1 and r >= 1 and b * r <= num_perm:
            assert best <= _error_area(threshold, b, r, 0.9)


def test_choose_bands_rejects_bad_thresholds():
    with pytest.raises(ValueError):
        choose_bands(1.0, 128)


@given(seeds, st.integers(2, 40), st.integers(1, 3), st.integers(1, 3))
def test_candidate_pairs_equal_brute_force(seed, n, bands, rows):
    # values from a tiny range so that many bands agree by chance
    sigs = np.random.default_rng(seed).integers(0, 3, size=(n, bands * rows + 1))
    expected = {(i, j) for i, j in itertools.combinations(range(n), 2)
                if any((sigs[i, k * rows:(k + 1) * rows] == sigs[j, k * rows:(k + 1) * rows]).all()
                       for k in range(bands))}
    found = candidate_pairs(sigs, bands, rows)
    assert found.shape[1] == 2 and {tuple(p) for p in found.tolist()} == expected
    assert found.tolist() == sorted(found.tolist())


def test_documents_without_shingles_are_never_candidates():
    sigs = np.array([[P, P], [P, P], [1, 2]])
    assert candidate_pairs(sigs, 2, 1).shape == (0, 2)


@given(seeds)
def test_verify_uses_the_exact_jaccard(seed):
    rng = np.random.default_rng(seed)
    sets = [np.unique(rng.integers(0, 12, rng.integers(0, 8))) for _ in range(6)]
    pairs = np.array(list(itertools.combinations(range(6), 2)))
    kept, sims = verify(pairs, sets.__getitem__, 0.5)
    exact = {(i, j): jaccard(set(sets[i].tolist()), set(sets[j].tolist())) for i, j in pairs}
    assert {tuple(p) for p in kept.tolist()} == {p for p, s in exact.items() if s >= 0.5}
    assert np.allclose(sims, [exact[tuple(p)] for p in kept.tolist()])


def _components(n, pairs):
    """Connected components by repeated merging: slow and obviously right."""
    groups = [{i} for i in range(n)]
    for i, j in pairs:
        gi, gj = next(g for g in groups if i in g), next(g for g in groups if j in g)
        if gi is not gj:
            groups.remove(gj)
            gi |= gj
    return groups


@given(st.integers(1, 30), st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29))))
def test_keep_mask_keeps_the_first_of_each_component(n, edges):
    pairs = np.array([(i % n, j % n) for i, j in edges], dtype=np.int64).reshape(-1, 2)
    mask = keep_mask(n, pairs)
    assert sorted(np.flatnonzero(mask).tolist()) == sorted(min(g) for g in _components(n, pairs))


def test_union_find_roots_are_smallest_members():
    uf = UnionFind(6)
    for i, j in [(5, 4), (4, 3), (1, 2), (3, 2)]:
        uf.union(i, j)
    assert [uf.find(i) for i in range(6)] == [0, 1, 1, 1, 1, 1]


def _corpus(seed, n_docs=40, n_planted=6):
    """Random 200-word documents, then copies of the first n_planted with one word changed:
    5 of 196 shingles differ, J = 191 / 201 = 0.95. Returns documents and planted pairs."""
    rng = np.random.default_rng(seed)
    vocab = [f"v{i}" for i in range(5000)]
    docs = [list(rng.choice(vocab, 200)) for _ in range(n_docs)]
    for i in range(n_planted):
        copy = list(docs[i])
        copy[rng.integers(200)] = "changed"
        docs.append(copy)
    planted = [(i, n_docs + i) for i in range(n_planted)]
    return [" ".join(d) for d in docs], planted


@given(seeds)
def test_planted_near_duplicates_are_found_and_only_they(seed):
    docs, planted = _corpus(seed)
    assert all(jaccard(shingles(docs[i]), shingles(docs[j])) >= 0.94 for i, j in planted)
    mask, stats = near_duplicate_mask(signatures(docs), lambda i: shingle_hashes(docs[i]), 0.8)
    # P(a pair with J = 0.94 is not a candidate) = (1 - 0.94^9)^14 < 1e-5 at b = 14, r = 9
    assert np.flatnonzero(~mask).tolist() == [j for _, j in planted]
    assert stats["verified_pairs"] == len(planted)
