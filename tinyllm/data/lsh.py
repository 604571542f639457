"""Locality-sensitive hashing over MinHash signatures: from N documents to the pairs worth
checking, then clusters of near duplicates, then one document kept per cluster.

Comparing every pair of N signatures is N^2 / 2 comparisons, 5e9 at N = 100k. The banding
trick (Indyk and Motwani 1998; Mining of Massive Datasets 3.4) cuts each signature of K values
into b bands of r rows (b r <= K). Two documents become a *candidate pair* when they agree on
every row of at least one band, which sorting each band's keys finds in O(N log N). A pair
with Jaccard similarity s agrees on one band with probability s^r, so

    P(candidate | s) = 1 - (1 - s^r)^b        (the "S-curve")

which rises steeply around s = (1/b)^(1/r). `choose_bands` picks b and r for a threshold t by
minimising the weighted area between the S-curve and the ideal step at t:

    cost = (1 - w) * integral_0^t P(s) ds  +  w * integral_t^1 (1 - P(s)) ds
           false positives                      false negatives

datasketch uses w = 0.5. We use w = 0.9, because every candidate pair is then *verified* by
the exact Jaccard of its shingle-hash sets: a false positive costs one set intersection, while
a false negative is a duplicate lost for good. At t = 0.8 and K = 128 this picks b = 14, r = 9:
P(candidate) is 0.87 at s = 0.8, 0.999 at s = 0.9, 0.03 at s = 0.5 (w = 0.5 gives b = 9, r = 13
and only 0.40 at s = 0.8).

Verified pairs are edges of a graph; its connected components (found with union-find) are
the clusters, and the first document of each cluster (the lowest index) is kept, as exact
deduplication keeps the first copy. A chain a~b~c lands in one cluster even when a and c
are below the threshold: that is the usual choice (the SlimPajama and text-dedup pipelines
also take connected components of the duplicate graph).

Shapes: N documents, K values per signature, M candidate pairs.
Follows: Leskovec, Rajaraman and Ullman, "Mining of Massive Datasets", 3.4-3.5; union-find
with path halving (Tarjan and van Leeuwen 1984).
Leaves out: LSH Forest and multi-probe LSH, parallel or on-disk bucketing, and a cap on huge
buckets (run exact deduplication first so identical documents do not make a quadratic bucket).
"""
import numpy as np

from autograd.kernels.numba_support import njit

from .minhash import P

_FNV_PRIME = np.uint64(0x100000001B3)
_GRID = 1000  # intervals of the trapezoid rule in choose_bands


def s_curve(s, bands, rows):
    """P(two documents with Jaccard s share a band) = 1 - (1 - s^rows)^bands.

    >>> round(float(s_curve(0.8, bands=14, rows=9)), 3)
    0.867
    """
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


def choose_bands(threshold, num_perm, fn_weight=0.9):
    """The (bands, rows), bands * rows <= num_perm, of least weighted error area (see above).

    >>> choose_bands(0.8, 128)
    (14, 9)
    >>> choose_bands(0.8, 128, fn_weight=0.5)
    (9, 13)
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), not {threshold}")
    options = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    return min(options, key=lambda br: _error_area(threshold, *br, fn_weight))


def _error_area(t, bands, rows, fn_weight):
    false_pos = _integral(lambda s: s_curve(s, bands, rows), 0.0, t)
    false_neg = _integral(lambda s: 1.0 - s_curve(s, bands, rows), t, 1.0)
    return (1.0 - fn_weight) * false_pos + fn_weight * false_neg


def _integral(f, lo, hi):
    """Trapezoid rule on a fixed grid (np.trapezoid is NumPy >= 2 only)."""
    y = f(np.linspace(lo, hi, _GRID + 1))
    return float(np.sum(y[1:] + y[:-1]) / 2 * (hi - lo) / _GRID)


def candidate_pairs(sigs, bands, rows):
    """Pairs (i, j), i < j, of documents that agree on all rows of some band. (N, K) -> (M, 2)

    A document without shingles (its signature is all p) is never a candidate.

    >>> sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 5, 5, 5]])
    >>> candidate_pairs(sigs, bands=2, rows=2).tolist()
    [[0, 1], [0, 2]]
    """
    assert sigs.ndim == 2 and bands * rows <= sigs.shape[1]
    live = np.flatnonzero((sigs != P).any(axis=1))  # (N',)
    found = [_pairs_in_band(sigs[live, k * rows:(k + 1) * rows]) for k in range(bands)]
    pairs = live[np.concatenate(found)] if found else np.empty((0, 2), np.int64)  # (M', 2)
    # the same pair can share several bands: keep each once, sorted
    codes = np.unique(pairs[:, 0] * len(sigs) + pairs[:, 1])  # (M,)
    return np.stack([codes // len(sigs), codes % len(sigs)], axis=1)


def _pairs_in_band(band):
    """Pairs of rows of `band` (N, r) with equal values, via a 64-bit key per row, sorted."""
    keys = np.zeros(len(band), dtype=np.uint64)  # (N,)
    for column in band.T.astype(np.uint64):
        keys = (keys ^ column) * _FNV_PRIME  # FNV-style fold; wraps mod 2^64 as intended
    # A key collision merges two buckets by accident; verification then rejects the pair.
    order = np.argsort(keys, kind="stable")
    return _pairs_in_runs(keys[order], order)


@njit(cache=True)
def _pairs_in_runs(sorted_keys, order):
    """Every pair (order[i], order[j]), i < j, within each run of equal sorted keys. (M, 2)"""
    n, total = len(sorted_keys), 0
    run_starts = [0]
    for i in range(1, n + 1):
        if i == n or sorted_keys[i] != sorted_keys[i - 1]:
            size = i - run_starts[-1]
            total += size * (size - 1) // 2
            run_starts.append(i)
    out = np.empty((total, 2), dtype=np.int64)
    m = 0
    for s in range(len(run_starts) - 1):
        members = np.sort(order[run_starts[s]:run_starts[s + 1]])
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                out[m, 0], out[m, 1] = members[i], members[j]
                m += 1
    return out


def verify(pairs, hashes_of, threshold):
    """The pairs whose exact Jaccard (of shingle-hash sets) is >= threshold, and those values.

    `hashes_of(i)` returns document i's sorted distinct shingle hashes; it is called once per
    document that appears in `pairs`. (M, 2) -> (M', 2), (M',)

    >>> sets = {0: np.array([1, 2, 3, 4]), 1: np.array([1, 2, 3, 5]), 2: np.array([1, 9])}
    >>> kept, sims = verify(np.array([[0, 1], [0, 2]]), sets.__getitem__, 0.5)
    >>> kept.tolist(), sims.tolist()
    ([[0, 1]], [0.6])
    """
    cache = {int(i): hashes_of(int(i)) for i in np.unique(pairs)}
    sims = np.array([_jaccard_sorted(cache[int(i)], cache[int(j)]) for i, j in pairs])
    keep = sims >= threshold if len(pairs) else np.zeros(0, dtype=bool)
    return pairs[keep], sims[keep]


def _jaccard_sorted(x, y):
    common = len(np.intersect1d(x, y, assume_unique=True))
    union = len(x) + len(y) - common
    return common / union if union else 0.0


class UnionFind:
    """Disjoint sets over 0..n-1; the root of a set is always its smallest member.

    >>> uf = UnionFind(5)
    >>> uf.union(3, 4); uf.union(4, 1)
    >>> [uf.find(i) for i in range(5)]
    [0, 1, 2, 1, 1]
    """

    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]  # path halving: skip a level
            i = self.parent[i]
        return i

    def union(self, i, j):
        # the smaller root wins, so a cluster's root is its first document. Linking by index
        # rather than by size, path halving alone keeps finds O(log n) amortised.
        ri, rj = self.find(i), self.find(j)
        self.parent[max(ri, rj)] = min(ri, rj)


def keep_mask(n, pairs):
    """(n,) bool: True for the first document of each connected component of `pairs`.

    >>> keep_mask(5, np.array([[0, 3], [3, 4]])).tolist()
    [True, True, True, False, False]
    """
    uf = UnionFind(n)
    for i, j in pairs:
        uf.union(int(i), int(j))
    return np.array([uf.find(i) == i for i in range(n)], dtype=bool)


def near_duplicate_mask(sigs, hashes_of, threshold=0.8, fn_weight=0.9):
    """Keep mask and statistics for N documents: bands -> candidates -> verify -> clusters.

    >>> from tinyllm.data.minhash import signatures, shingle_hashes
    >>> docs = ["a b c d e f g h i j", "a b c d e f g h i j k", "z y x w v u t s r q"]
    >>> mask, stats = near_duplicate_mask(signatures(docs), lambda i: shingle_hashes(docs[i]))
    >>> mask.tolist(), stats["verified_pairs"]
    ([True, False, True], 1)
    """
    bands, rows = choose_bands(threshold, sigs.shape[1], fn_weight)
    candidates = candidate_pairs(sigs, bands, rows)
    pairs, _ = verify(candidates, hashes_of, threshold)
    mask = keep_mask(len(sigs), pairs)
    stats = {"bands": bands, "rows": rows, "candidate_pairs": len(candidates),
             "verified_pairs": len(pairs), "removed": int((~mask).sum())}
    return mask, stats
