"""Training byte-level BPE: the obvious algorithm, then the same algorithm made fast.

Byte pair encoding (Sennrich et al., 2016, after Gage, 1994) starts from the 256 single bytes and
repeats one step: count every pair of adjacent tokens in the corpus, and replace the most frequent
pair everywhere by a new token. The k-th merge creates token id 256 + k. Pairs are only counted
inside a pre-tokenised chunk (see pretokenize.py), so merges never cross chunk boundaries.

Tie rule, so that training is reproducible: among pairs with the highest count, merge the pair
(a, b) that is smallest as a tuple of ids (smallest a, then smallest b).

Version 1, `train_reference`, is the textbook loop (minbpe's `get_stats` and `merge`): recount
every pair of every chunk for each merge, so its cost is merges x corpus length. Version 2,
`train_fast`, gives exactly the same merges (the tests check it) using three ideas:
  1. work on unique chunks weighted by how often they occur ("the" is counted once, weight 30000);
  2. keep pair counts across merges and, after merging (a, b), update only the chunks that
     contain (a, b), found through an index from each pair to the chunks it occurs in;
  3. find the best pair with a heap of (-count, pair) entries, skipping entries gone stale.
The inner loop is compiled with Numba; the algorithm is the one in the comments either way.

Leaves out: training on text that does not fit in memory, parallel counting, and HF-style
limits such as a minimum frequency.

Shapes: N unique chunks, L total bytes of the unique chunks, M merges.
"""
import heapq
from collections import Counter

import numpy as np

from autograd.kernels.numba_support import Dict, njit, types

# ---------------------------------------------------------------------------------------------
# version 1: the reference
# ---------------------------------------------------------------------------------------------


def get_stats(ids, counts=None):
    """Count adjacent pairs in a list of ids, adding into `counts` if given.

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    """Replace every occurrence of `pair` in `ids` by `idx`, scanning left to right.

    Left to right matters when a pair overlaps itself: in "aaa" only the first "aa" merges.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge([5, 5, 5], (5, 5), 6)
    [6, 5]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def best_pair(counts):
    """The pair to merge next: highest count, ties to the smallest (a, b).

    >>> best_pair({(9, 1): 3, (2, 7): 3, (0, 0): 1})
    (2, 7)
    """
    return min(counts, key=lambda pair: (-counts[pair], pair))


def train_reference(chunks, n_merges):
    """Learn up to `n_merges` merges from a list of chunk strings, the slow obvious way.

    Returns (merges, counts): merge k joins merges[k] = (a, b) into id 256 + k, and counts[k] is
    how often that pair occurred when it was chosen. Stops early if no pair is left.

    >>> train_reference(["aaab", "aaab"], 2)
    ([(97, 97), (97, 98)], [4, 2])
    """
    chunk_ids = [list(c.encode("utf-8")) for c in chunks]
    merges, counts = [], []
    for k in range(n_merges):
        stats = {}
        for ids in chunk_ids:
            get_stats(ids, stats)
        if not stats:
            break
        pair = best_pair(stats)
        chunk_ids = [merge(ids, pair, 256 + k) for ids in chunk_ids]
        merges.append(pair)
        counts.append(stats[pair])
    return merges, counts


# ---------------------------------------------------------------------------------------------
# version 2: unique chunks + pair->chunk index + heap, compiled with Numba
# ---------------------------------------------------------------------------------------------


def train_fast(chunks, n_merges):
    """Learn the same merges as `train_reference`, in time that grows with the changes per merge.

    >>> train_fast(["aaab", "aaab"], 2)
    ([(97, 97), (97, 98)], [4, 2])
    """
    unique = Counter(chunks)  # N distinct chunks -> how often each occurs
    blobs = [c.encode("utf-8") for c in unique]
    starts = np.zeros(len(blobs) + 1, dtype=np.int64)  # N+1: chunk c is toks[starts[c]:...]
    starts[1:] = np.cumsum([len(b) for b in blobs])
    toks = np.frombuffer(b"".join(blobs), dtype=np.uint8).astype(np.int64)  # L
    weights = np.fromiter(unique.values(), dtype=np.int64, count=len(unique))  # N
    pairs, counts = _train_numba(toks, starts, weights, n_merges)  # M,2 and M
    return [(int(a), int(b)) for a, b in pairs], [int(c) for c in counts]


# A pair (a, b) of ids < 2**31 is one int64 key a * 2**32 + b; keys then sort like (a, b) tuples,
# which is exactly the tie rule.
@njit(cache=True)
def _key(a, b):
    return (a << 32) | b


@njit(cache=True)
def _count_pairs(toks, lo, hi, weight, counts, touched):
    # Add `weight` to the count of every adjacent pair in toks[lo:hi]; remember what changed.
    for i in range(lo, hi - 1):
        k = _key(toks[i], toks[i + 1])
        counts[k] = (counts[k] if k in counts else 0) + weight
        touched[k] = True


@njit(cache=True)
def _merge_in_place(toks, lo, hi, a, b, new):
    # The same left-to-right scan as `merge`, writing into the chunk's own slot; returns the
    # new end, since each merge shortens the chunk by one.
    out, i = lo, lo
    while i < hi:
        if i + 1 < hi and toks[i] == a and toks[i + 1] == b:
            toks[out] = new
            i += 2
        else:
            toks[out] = toks[i]
            i += 1
        out += 1
    return out


@njit(cache=True)
def _contains(toks, lo, hi, a, b):
    for i in range(lo, hi - 1):
        if toks[i] == a and toks[i + 1] == b:
            return True
    return False


@njit(cache=True)
def _index_add(index, node_chunk, node_next, n_nodes, key, c):
    # The pair -> chunks index is one singly linked list per pair, stored in two flat arrays:
    # index[key] is the newest node, node_chunk[node] its chunk, node_next[node] the older node.
    # Lists only grow; a chunk that no longer holds the pair is skipped when read.
    head = index[key] if key in index else -1
    if head >= 0 and node_chunk[head] == c:
        return node_chunk, node_next, n_nodes  # already the newest entry, e.g. (a,a) in "aaa"
    if n_nodes == node_chunk.shape[0]:  # full: double the capacity
        node_chunk = np.concatenate((node_chunk, np.empty_like(node_chunk)))
        node_next = np.concatenate((node_next, np.empty_like(node_next)))
    node_chunk[n_nodes] = c
    node_next[n_nodes] = head
    index[key] = n_nodes
    return node_chunk, node_next, n_nodes + 1


@njit(cache=True)
def _pop_best(heap, counts):
    # Entries are (-count, key). An entry is stale when the pair's count has changed since it
    # was pushed; every change pushes a fresh entry, so the first live entry is the best pair.
    while len(heap) > 0:
        neg_count, key = heapq.heappop(heap)
        if key in counts and counts[key] == -neg_count:
            return key
    return -1


@njit(cache=True)
def _push_changed(heap, counts, touched):
    for key in touched:
        count = counts[key]
        if count > 0:
            heapq.heappush(heap, (-count, key))
        else:
            del counts[key]  # a pair gone from the corpus for good


@njit(cache=True)
def _update_chunk(toks, lo, hi, a, b, new, weight, counts, touched):
    # Take the chunk's pairs out of the counts, merge, put the new pairs back. Simpler than
    # patching the neighbours of each occurrence, and right even for overlaps such as "aaaa".
    _count_pairs(toks, lo, hi, -weight, counts, touched)
    hi = _merge_in_place(toks, lo, hi, a, b, new)
    _count_pairs(toks, lo, hi, weight, counts, touched)
    return hi


@njit(cache=True)
def _index_chunk(index, node_chunk, node_next, n_nodes, toks, lo, hi, c, only):
    # Index chunk c under its pairs: all of them if only < 0, else those holding token `only`
    # (after a merge, only the pairs with the new token can be missing from the index).
    for i in range(lo, hi - 1):
        if only < 0 or toks[i] == only or toks[i + 1] == only:
            node_chunk, node_next, n_nodes = _index_add(
                index, node_chunk, node_next, n_nodes, _key(toks[i], toks[i + 1]), c)
    return node_chunk, node_next, n_nodes


@njit(cache=True)
def _train_numba(toks, starts, weights, n_merges):
    # toks (L,) is rewritten in place: chunk c lives in toks[starts[c]:ends[c]] and shrinks by one
    # for each merge inside it. Returns the merged pairs (M,2) and their counts (M,).
    n = weights.shape[0]
    ends = starts[1:].copy()  # N
    counts = Dict.empty(key_type=types.int64, value_type=types.int64)  # pair key -> count
    touched = Dict.empty(key_type=types.int64, value_type=types.boolean)  # keys changed
    index = Dict.empty(key_type=types.int64, value_type=types.int64)  # pair key -> newest node
    capacity = max(16, toks.shape[0])
    nodes = (np.empty(capacity, np.int64), np.empty(capacity, np.int64), 0)  # see _index_add
    # pass 1: count all pairs once, weighted, and index every pair's chunks
    for c in range(n):
        _count_pairs(toks, starts[c], ends[c], weights[c], counts, touched)
        nodes = _index_chunk(index, *nodes, toks, starts[c], ends[c], c, -1)
    heap = [(np.int64(0), np.int64(0))]
    heap.pop()  # an empty list whose element type Numba now knows
    _push_changed(heap, counts, touched)
    seen = np.full(n, -1, dtype=np.int64)  # N: the last merge that visited each chunk
    merges = np.zeros((n_merges, 2), dtype=np.int64)
    merge_counts = np.zeros(n_merges, dtype=np.int64)
    # pass 2: merge the best pair, then visit only the chunks the index lists for it
    for m in range(n_merges):
        key = _pop_best(heap, counts)
        if key < 0:
            return merges[:m], merge_counts[:m]  # every chunk is a single token
        a, b, new = key >> 32, key & 0xFFFFFFFF, 256 + m
        merges[m, 0], merges[m, 1], merge_counts[m] = a, b, counts[key]
        touched = Dict.empty(key_type=types.int64, value_type=types.boolean)
        node = index[key]
        del index[key]  # (a, b) can never occur again: tokens only grow
        while node >= 0:
            c, node = nodes[0][node], nodes[1][node]  # node_chunk, node_next
            if seen[c] == m or not _contains(toks, starts[c], ends[c], a, b):
                continue
            seen[c] = m
            ends[c] = _update_chunk(toks, starts[c], ends[c], a, b, new, weights[c], counts,
                                    touched)
            nodes = _index_chunk(index, *nodes, toks, starts[c], ends[c], c, new)
        _push_changed(heap, counts, touched)
    return merges, merge_counts
