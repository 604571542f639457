"""Encoding with learned merges: the reference loop for one chunk, and a compiled whole-text one.

A trained BPE is a list of merges (a, b) -> new id, and a merge's id is also its rank: a lower
id was learned earlier, from a more frequent pair. To encode a chunk, start from its bytes and
keep applying the lowest-ranked merge that occurs anywhere in the chunk, until none applies.
That replays training on this one chunk, which is why tiktoken calls ids "ranks".

Version 1, `encode_chunk_reference`, is minbpe's loop: count the pairs, pick the one with the
lowest rank, merge all its occurrences. Version 2, `encode_text`, takes a whole pre-split text
(code points and chunk ends) in one Numba call: it writes each chunk's UTF-8 bytes itself, merges
the leftmost lowest-ranked pair in place each step, and merges each distinct chunk only once,
copying the ids for its repeats (found by a hash of the chunk, then compared exactly). Both
versions give identical ids (tested), because no merge can create a pair ranked below itself:
a merge's parts always have lower ids than its result.

Leaves out: the heap over pair ranks that makes one very long chunk (a megabyte of letters)
O(n log n) instead of O(n^2); pre-tokenised chunks are words, where the plain scan is faster.
Also a cache of chunk encodings kept across calls: within one long text, repeats dominate.

Shapes: T code points, K chunks, M merges.
"""
import numpy as np

from autograd.kernels.numba_support import Dict, njit, types

from .bpe_train import get_stats, merge


def encode_chunk_reference(data, merges, byte_ids):
    """Encode the bytes of one chunk: apply the lowest-ranked available merge until none is left.

    `merges` maps (a, b) -> new id (its rank); `byte_ids[x]` is the id of the single byte x.

    >>> encode_chunk_reference(b"aaab", {(97, 97): 256, (256, 97): 257}, range(256))
    [257, 98]
    """
    ids = [byte_ids[x] for x in data]
    while len(ids) >= 2:
        stats = get_stats(ids)
        pair = min(stats, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break  # no adjacent pair is a known merge
        ids = merge(ids, pair, merges[pair])
    return ids


def rank_table(merges):
    """Pack a merges dict {(a, b): id} into the Numba hash table `encode_text` reads.

    >>> len(rank_table({(97, 97): 256}))
    1
    """
    pairs = np.array(list(merges), dtype=np.int64).reshape(-1, 2)  # M,2
    ids = np.array(list(merges.values()), dtype=np.int64)  # M
    return _build_table(pairs, ids)


def encode_text(cps, ends, byte_ids, table):
    """Encode pre-split text: code points `cps` (T,), chunk ends `ends` (K,) -> ids.

    Each chunk is written as UTF-8, its bytes mapped through `byte_ids`, and merged by rank.
    A chunk seen before in the same call is copied from its first encoding instead.

    >>> table = rank_table({(97, 97): 256, (256, 97): 257})
    >>> cps = np.array([ord(c) for c in "aaab aé"])
    >>> encode_text(cps, np.array([4, 7]), np.arange(256), table).tolist()
    [257, 98, 32, 97, 195, 169]
    """
    # fixed dtypes, so Numba compiles one version
    cps, ends = np.asarray(cps, dtype=np.uint32), np.asarray(ends, dtype=np.int64)
    return _encode_numba(cps, ends, np.asarray(byte_ids, dtype=np.int64), table)


@njit(cache=True)
def _build_table(pairs, ids):
    table = Dict.empty(key_type=types.int64, value_type=types.int64)
    for m in range(ids.shape[0]):
        table[(pairs[m, 0] << 32) | pairs[m, 1]] = ids[m]
    return table


@njit(cache=True)
def _merge_lowest_rank(ids, lo, hi, table):
    # Chunk ids[lo:hi] shrinks in place; returns its new end.
    no_merge = np.iinfo(np.int64).max
    while hi - lo >= 2:
        # pass 1: the leftmost adjacent pair with the lowest rank
        best, at = no_merge, -1
        for i in range(lo, hi - 1):
            key = (ids[i] << 32) | ids[i + 1]
            if key in table:
                rank = table[key]
                if rank < best:
                    best, at = rank, i
        if at < 0:
            return hi
        # pass 2: write the merged token and close the gap
        ids[at] = best
        ids[at + 1:hi - 1] = ids[at + 2:hi]
        hi -= 1
    return hi


@njit(cache=True)
def _put_utf8(out, q, cp, byte_ids):
    # UTF-8: 1 byte below U+0080, else a lead byte giving the length (110xxxxx, 1110xxxx,
    # 11110xxx) and continuation bytes 10xxxxxx, 6 bits each. Writes their ids at out[q:].
    n = 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    if n == 1:
        out[q] = byte_ids[cp]
        return q + 1
    lead = (0xC0, 0xE0, 0xF0)[n - 2]
    out[q] = byte_ids[lead | (cp >> (6 * (n - 1)))]
    for k in range(1, n):
        out[q + k] = byte_ids[0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3F)]
    return q + n


@njit(cache=True)
def _hash(cps, lo, hi):
    # FNV-1a over the chunk's code points: a 64-bit fingerprint, compared exactly on a hit
    h = np.uint64(14695981039346656037)
    for i in range(lo, hi):
        h = (h ^ np.uint64(cps[i])) * np.uint64(1099511628211)
    return h


@njit(cache=True)
def _same(cps, lo1, hi1, lo2, hi2):
    if hi1 - lo1 != hi2 - lo2:
        return False
    for k in range(hi1 - lo1):
        if cps[lo1 + k] != cps[lo2 + k]:
            return False
    return True


@njit(cache=True)
def _encode_numba(cps, ends, byte_ids, table):
    # ids (<= 4T,): UTF-8 has at most 4 bytes a code point, and merging only shortens.
    out = np.empty(4 * cps.shape[0], dtype=np.int64)
    id_start = np.zeros(ends.shape[0] + 1, dtype=np.int64)  # K+1: chunk k is out[id_start[k]:...]
    first_seen = Dict.empty(key_type=types.uint64, value_type=types.int64)  # hash -> chunk
    lo = 0
    for k in range(ends.shape[0]):
        hi, pos = ends[k], id_start[k]
        h = _hash(cps, lo, hi)
        first = first_seen[h] if h in first_seen else -1
        first_lo = ends[first - 1] if first > 0 else 0
        if first >= 0 and _same(cps, first_lo, ends[first], lo, hi):
            # a repeat ("the", "\n", ...): copy the ids of its first occurrence
            n_ids = id_start[first + 1] - id_start[first]
            out[pos:pos + n_ids] = out[id_start[first]:id_start[first] + n_ids]
            id_start[k + 1] = pos + n_ids
        else:
            if first < 0:
                first_seen[h] = k  # (a hash collision just goes uncached)
            q = pos
            for i in range(lo, hi):
                q = _put_utf8(out, q, cps[i], byte_ids)
            id_start[k + 1] = _merge_lowest_rank(out, pos, q, table)
        lo = hi
    return out[:id_start[-1]]
