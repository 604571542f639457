"""Attention, version 3: FlashAttention on a CPU, built like a BLAS kernel.

Read attention.py first: version 1 there is the NumPy reference this file is tested equal to,
and version 2 the same algorithm as plain loops, one query row and one key at a time. Only the
order of the arithmetic changes here:
  * (batch, head) pairs run in parallel (on Python threads: numba_support.run_workers says
    why), each on private copies of its q, k, v (so any strides will do), their rows
    zero-padded to multiples of 8 for the 4x4 blocks and the transposes.
    Each worker's scratch arrays are made once for all its heads, named by a namedtuple
    (ForwardScratch, BackwardScratch) whose fields Numba reads as cheaply as local variables.
  * Every matrix product is made of one register-blocked 4x4 micro-kernel, `_block_4x4`, which
    wants both operands along contiguous rows, so v (and in the backward q, dout, k) are also
    kept transposed.
  * Forward: QUERY_BLOCK query rows at a time walk the keys in tiles of KEY_TILE, updating
    version 2's running max m, sum l and unnormalised output once per tile, not once per key;
    with T <= KEY_TILE that is one tile, a plain softmax.
  * Backward: KEY_BLOCK keys at a time meet every query that sees them (version 2 goes query by
    query), so dk and dv are finished block by block while dq sums up.
  * Scores exist a (QUERY_BLOCK, KEY_TILE) or (KEY_BLOCK, Tq) block at a time, so extra memory
    is O(T), not O(T^2); 4x4 blocks past the causal diagonal are skipped, halving the work.

Shapes: B batch, H heads, Tq queries, Tk keys, hs head size; Tq8, Tk8 and hs4 are Tq, Tk and hs
rounded up to multiples of 8, 8 and 4 (the padded copies).
Left out: what version 1 leaves out, and any kernel for a GPU or for half precision.
"""
from collections import namedtuple

import numpy as np

from .fast_exp import exp
from .numba_support import FASTMATH, fmax, njit, run_workers, threads

# Block sizes, all multiples of 4 (the micro-kernel's block). Forward: QUERY_BLOCK query rows
# walk the keys KEY_TILE at a time. Backward: KEY_BLOCK keys meet every query that sees them.
QUERY_BLOCK = 32
KEY_TILE = 256
KEY_BLOCK = 64
NO_LIMIT = 1 << 40  # a band edge no row reaches: no mask on that side

# --- the micro-kernel and the products made of it ---


@njit(cache=True)
def _round_up(n, m):
    return (n + m - 1) // m * m


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _store4(row, c, add, x0, x1, x2, x3):
    """row[c:c+4] = (x0, x1, x2, x3), or += when add."""
    if add:
        x0, x1, x2, x3 = x0 + row[c], x1 + row[c + 1], x2 + row[c + 2], x3 + row[c + 3]
    row[c], row[c + 1], row[c + 2], row[c + 3] = x0, x1, x2, x3


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _block_4x4(a, b, out, r, c, k0, k1, add):
    """out[r:r+4, c:c+4] (+)= a[r:r+4, k0:k1] @ b[c:c+4, k0:k1].T; a (., K), b (., K) rows.

    The micro-kernel every product below is made of (BLAS's register blocking): 16 dot products
    at once, their sums held in registers while LLVM vectorises the loop over k, so each a[., k]
    and b[., k] loaded is used 4 times. Measured on one core: 110 GFLOP/s at k1 - k0 = 64, 190
    at 256, where one dot product at a time gave 80. What stays is a fixed cost per block, most
    of it the 16 horizontal sums of the vector registers; inlined, as a call would also pay a
    reference count increment and decrement on each array (14 cycles, not 36, at k1 = k0).
    """
    a0, a1, a2, a3 = a[r, k0:k1], a[r + 1, k0:k1], a[r + 2, k0:k1], a[r + 3, k0:k1]
    b0, b1, b2, b3 = b[c, k0:k1], b[c + 1, k0:k1], b[c + 2, k0:k1], b[c + 3, k0:k1]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = out.dtype.type(0)
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = out.dtype.type(0)
    for k in range(k1 - k0):
        x0, x1, x2, x3 = a0[k], a1[k], a2[k], a3[k]
        y0, y1, y2, y3 = b0[k], b1[k], b2[k], b3[k]
        s00, s01, s02, s03 = s00 + x0 * y0, s01 + x0 * y1, s02 + x0 * y2, s03 + x0 * y3
        s10, s11, s12, s13 = s10 + x1 * y0, s11 + x1 * y1, s12 + x1 * y2, s13 + x1 * y3
        s20, s21, s22, s23 = s20 + x2 * y0, s21 + x2 * y1, s22 + x2 * y2, s23 + x2 * y3
        s30, s31, s32, s33 = s30 + x3 * y0, s31 + x3 * y1, s32 + x3 * y2, s33 + x3 * y3
    _store4(out[r], c, add, s00, s01, s02, s03)
    _store4(out[r + 1], c, add, s10, s11, s12, s13)
    _store4(out[r + 2], c, add, s20, s21, s22, s23)
    _store4(out[r + 3], c, add, s30, s31, s32, s33)


@njit(cache=True, fastmath=FASTMATH)
def _dots(a, b, out, n_rows, n_cols, lo, hi):
    """out[r, c] = a[r] . b[c] for r < n_rows and the c < n_cols in row r's band r+lo <= c < r+hi.

    a (R4, K), b (C4, K), out (R4, C4): rows padded to multiples of 4, as the work is done in
    whole 4x4 blocks; blocks wholly outside the band (a causal mask is one) are skipped, and
    their entries of out are left as they were.
    """
    for c in range(max(0, lo) // 4 * 4, min(n_cols, n_rows - 1 + hi), 4):  # 4 columns, then
        for r in range(max(0, c + 1 - hi) // 4 * 4, min(n_rows, c + 4 - lo), 4):  # their rows
            _block_4x4(a, b, out, r, c, 0, a.shape[1], False)


@njit(cache=True, fastmath=FASTMATH)
def _mix(p, b, out, n_rows, n_red, lo, hi):
    """out[r, c] += sum_k p[r, k] b[c, k] over the k < n_red in row r's band r+lo <= k < r+hi.

    p (R4, K), b (C4, K), out (R4, C4). A block of 4 rows sums over the union of their bands,
    from a multiple of 16 k's on (its vector loads then do not straddle cache lines: measured
    8% off the backward), so p must hold zeros there where a row's band has not begun.
    """
    for r in range(0, n_rows, 4):  # 4 rows of out, then 4 of its columns at a time
        k0, k1 = max(0, r + lo) // 16 * 16, min(n_red, r + 3 + hi)  # the 4 rows' bands' union
        for c in range(0, out.shape[1], 4):
            _block_4x4(p, b, out, r, c, k0, k1, True)


@njit(cache=True, fastmath=FASTMATH)
def _copy_rows(x, scale, out):
    """out[t, :hs] = x[t, :hs] * scale for the rows of out, hs = out's width. x (>= T, >= hs)."""
    scale = out.dtype.type(scale)
    for t in range(out.shape[0]):
        xt, ot = x[t], out[t]  # row views: their loops vectorise even on strided arrays
        for d in range(out.shape[1]):
            ot[d] = xt[d] * scale


@njit(cache=True, fastmath=FASTMATH)
def _transpose_tiles(xh, out):
    """out[t // tile, :hs, t % tile] = xh[t]: each tile of rows of xh transposed, so that a
    column of xh runs along contiguous memory. xh (T8, hs) -> out (n_tiles, hs4, tile)."""
    tile = out.shape[2]
    for t in range(0, xh.shape[0], 8):  # 8 rows at a time: 8 consecutive floats of a row of out
        x0, x1, x2, x3, x4, x5, x6, x7 = (xh[t], xh[t + 1], xh[t + 2], xh[t + 3], xh[t + 4],
                                          xh[t + 5], xh[t + 6], xh[t + 7])  # (hs,) each
        o = out[t // tile, :, t % tile:]  # (hs4, .)
        for d in range(xh.shape[1]):
            _store4(o[d], 0, False, x0[d], x1[d], x2[d], x3[d])
            _store4(o[d], 4, False, x4[d], x5[d], x6[d], x7[d])


# --- forward ---

ForwardScratch = namedtuple("ForwardScratch", [
    "q", "k", "v",  # (Tq8, hs) q / sqrt(hs); (Tk8, hs) each
    "v_t",  # (n_tiles, hs4, KEY_TILE) v transposed tile by tile: sums over keys run along rows
    "scores",  # (QUERY_BLOCK * W,) a block's scores for one tile, W <= KEY_TILE wide
    "acc",  # (QUERY_BLOCK, hs4) version 2's running out_i (unnormalised), for a block of rows
    "m", "l",  # (QUERY_BLOCK,) each: version 2's running max m and sum l, for a block of rows
])


@njit(cache=True)
def _forward_scratch(q, Tk):
    """One worker's ForwardScratch, for q (B, H, Tq, hs) and Tk keys."""
    Tq8, Tk8, hs, x = _round_up(q.shape[2], 8), _round_up(Tk, 8), q.shape[3], q.dtype
    n_tiles, hs4 = (Tk8 + KEY_TILE - 1) // KEY_TILE, _round_up(hs, 4)
    return ForwardScratch(
        q=np.zeros((Tq8, hs), dtype=x), k=np.zeros((Tk8, hs), dtype=x),
        v=np.zeros((Tk8, hs), dtype=x), v_t=np.zeros((n_tiles, hs4, KEY_TILE), dtype=x),
        scores=np.empty(QUERY_BLOCK * min(KEY_TILE, _round_up(Tk, 16)), dtype=x),
        acc=np.empty((QUERY_BLOCK, hs4), dtype=x),
        m=np.empty(QUERY_BLOCK, dtype=x), l=np.empty(QUERY_BLOCK, dtype=x))


@njit(cache=True, fastmath=FASTMATH)
def _fold_row(m, l, acc, r, m_new, total):
    """Row r's running max m becomes m_new, and its sum l and output acc follow: what they
    summed under the old max is rescaled, exp(s - m_new) = exp(s - m) exp(m - m_new)."""
    c = exp(m[r] - m_new)
    if l[r] > 0:  # (before the first tile acc is still 0)
        for d in range(acc.shape[1]):
            acc[r, d] *= c
    l[r] = l[r] * c + total
    m[r] = m_new


@njit(cache=True, fastmath=FASTMATH)
def _online_softmax_tile(s, n_keys, diag, m, l, acc):
    """Fold a tile of scores into the running max m, sum l and unnormalised output acc.

    s (R, W) scores of keys j < n_keys -> p = exp(s - m) in place, zero from row r's key
    min(n_keys, r + diag) on; m, l (R,) and acc (R, hs4) updated in place.
    """
    for r in range(0, s.shape[0], 4):  # 4 rows at once, 4 independent sums for LLVM to
        s0, s1, s2, s3 = s[r], s[r + 1], s[r + 2], s[r + 3]  # vectorise: 2-3x one row's speed
        for u in range(4):  # masked keys get -inf, so that the loops below run over whole rows
            s[r + u, max(0, min(n_keys, r + u + diag)):] = -np.inf
        # every row sees key 0 in the first tile, so the max is finite from then on
        m0, m1, m2, m3 = m[r], m[r + 1], m[r + 2], m[r + 3]
        for j in range(s.shape[1]):  # pass 1: the new running max
            m0, m1, m2, m3 = fmax(m0, s0[j]), fmax(m1, s1[j]), fmax(m2, s2[j]), fmax(m3, s3[j])
        t0 = t1 = t2 = t3 = s.dtype.type(0)
        for j in range(s.shape[1]):  # pass 2: p = exp(s - m) and its sum; 0 for masked keys
            p0, p1, p2, p3 = exp(s0[j] - m0), exp(s1[j] - m1), exp(s2[j] - m2), exp(s3[j] - m3)
            s0[j], s1[j], s2[j], s3[j] = p0, p1, p2, p3
            t0, t1, t2, t3 = t0 + p0, t1 + p1, t2 + p2, t3 + p3
        # pass 3: rescale what the rows summed under their old max (the caller then adds p v)
        _fold_row(m, l, acc, r, m0, t0)
        _fold_row(m, l, acc, r + 1, m1, t1)
        _fold_row(m, l, acc, r + 2, m2, t2)
        _fold_row(m, l, acc, r + 3, m3, t3)


@njit(cache=True, fastmath=FASTMATH)
def _query_block(qb, n_keys, diag, sc):
    """One block of query rows against the keys, tile by tile, with the online softmax.

    qb (R, hs) queries / sqrt(hs), rows of sc.q; row r sees keys j < min(n_keys, r + diag).
    -> sc.acc[:R] = sum_j exp(s_j - m) v_j, sc.m[:R] = m, the max, and sc.l[:R] the sum of
    exp(s_j - m), in place, as version 2's _row_forward keeps them for one row.
    """
    R = qb.shape[0]
    m, l, acc = sc.m[:R], sc.l[:R], sc.acc[:R]  # (R,), (R,), (R, hs4)
    m[:] = -np.inf
    l[:] = 0.0
    acc[:] = 0.0
    for t in range((n_keys + KEY_TILE - 1) // KEY_TILE):  # key tiles, left to right
        j0 = t * KEY_TILE
        nk = min(KEY_TILE, n_keys - j0)
        W = _round_up(nk, 16)
        # (R, W) C-contiguous, unlike the slice [:R, :W] of a 2-D array: LLVM vectorises its rows
        s = sc.scores[:R * W].reshape(R, W)
        _dots(qb, sc.k[j0:], s, R, nk, -NO_LIMIT, diag - j0)  # s = q k^T, visible blocks only
        _online_softmax_tile(s, nk, diag - j0, m, l, acc)  # s = exp(s - m)
        _mix(s, sc.v_t[t], acc, R, nk, -NO_LIMIT, diag - j0)  # acc += exp(s - m) v


@njit(cache=True, fastmath=FASTMATH)
def _head_forward(q, k, v, causal, out, lse, sc):
    """One (batch, head): q (Tq, hs), k, v (Tk, hs) -> out (Tq, hs), lse (Tq,), in place.
    sc is this worker's ForwardScratch."""
    (Tq, hs), Tk = q.shape, k.shape[0]
    # private contiguous copies, whatever the inputs' strides; v also transposed, tile by tile
    _copy_rows(q, 1.0 / np.sqrt(hs), sc.q[:Tq])  # q / sqrt(hs)
    _copy_rows(k, 1.0, sc.k[:Tk])
    _copy_rows(v, 1.0, sc.v[:Tk])
    _transpose_tiles(sc.v, sc.v_t)
    for i0 in range(0, Tq, QUERY_BLOCK):  # blocks of query rows, the last one padded
        R = min(QUERY_BLOCK, sc.q.shape[0] - i0)
        diag = i0 + Tk - Tq + 1 if causal else NO_LIMIT  # row r sees keys j < r + diag
        _query_block(sc.q[i0:i0 + R], min(Tk, R - 1 + diag), diag, sc)
        for r in range(min(R, Tq - i0)):  # the real rows: out = acc / l, lse = m + log l
            o, a, inv_l = out[i0 + r], sc.acc[r], 1.0 / sc.l[r]
            for d in range(hs):
                o[d] = a[d] * inv_l
            lse[i0 + r] = sc.m[r] + np.log(sc.l[r])


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _forward_worker(q, k, v, causal, out, lse, w, workers):
    """Worker w of `workers`: q (B,H,Tq,hs), k, v (B,H,Tk,hs) of any strides -> its heads of
    out (B,H,Tq,hs), lse (B,H,Tq), in place. (batch, head) pairs are independent and all cost
    the same, so they are dealt round robin: w, w + workers, ... Its scratch is made once for
    all its heads."""
    B, H = q.shape[0], q.shape[1]
    scratch = _forward_scratch(q, k.shape[2])
    for h in range(w, B * H, workers):
        b, hh = h // H, h % H
        _head_forward(q[b, hh], k[b, hh], v[b, hh], causal, out[b, hh], lse[b, hh], scratch)


def attention_forward_tiled(q, k, v, causal=True):
    """Same contract as attention_forward_ref. -> out (B,H,Tq,hs), lse (B,H,Tq)."""
    assert not causal or q.shape[-2] <= k.shape[-2], "queries are the last Tq of Tk positions"
    out = np.empty(q.shape, dtype=q.dtype)  # (B, H, Tq, hs)
    lse = np.empty(q.shape[:-1], dtype=q.dtype)  # (B, H, Tq)
    # views as they come, whatever their strides: the kernel copies each head it works on
    run_workers(_forward_worker, min(threads(), q.shape[0] * q.shape[1]), q, k, v, causal, out,
                lse)
    return out, lse


# --- backward ---

# Per key block, with p = exp(s - lse) rebuilt from the forward's lse and di = dout_i . out_i:
# out = p v           =>  dv_j = sum_i p_ij dout_i,   dp_ij = dout_i . v_j
# p = softmax(s)      =>  ds_ij = p_ij (dp_ij - di)
# s = q k^T / sqrt(hs) =>  dq_i += sum_j ds_ij k_j / sqrt(hs),   dk_j = sum_i ds_ij q_i / sqrt(hs)
# Keys are the rows here (s^T, dp^T), so dk and dv are finished one key block at a time.
@njit(cache=True, fastmath=FASTMATH)
def _softmax_backward_tile(st, dpt, lse, di, n_keys, i0, lo):
    """In place from column i0 on: st (R, Tq8) s^T -> p^T, dpt dp^T -> ds^T. Row j's queries
    before j + lo are masked (p = 0), as are key rows from n_keys on; padded queries have
    lse = +inf (p = 0)."""
    lse, di = lse[i0:], di[i0:]  # views: loops that start at 0 vectorise, measured 3x faster
    for j in range(st.shape[0]):
        sj, dj = st[j, i0:], dpt[j, i0:]  # (Tq8 - i0,) each
        first = min(max(0, j + lo - i0), sj.shape[0]) if j < n_keys else sj.shape[0]
        sj[:first] = -np.inf
        dj[:first] = 0.0
        for i in range(sj.shape[0]):  # whole rows: see _online_softmax_tile
            sj[i] = exp(sj[i] - lse[i])
            dj[i] = sj[i] * (dj[i] - di[i])


@njit(cache=True, fastmath=FASTMATH)
def _dq_block(dst, kt, ds, dq, n_keys, lo):
    """dq += ds k for one key block: dst (R, Tq8) ds^T, kt (hs4, KEY_BLOCK) its keys transposed,
    ds (Tq8, KEY_BLOCK) scratch, dq (Tq8, hs4); query i sees the block's keys j <= i - lo."""
    i0 = max(0, lo) // 4 * 4  # queries before i0 see none of these keys
    ds = ds[i0:]  # (Tq8 - i0, KEY_BLOCK)
    for j in range(0, n_keys, 4):  # transpose, so that the sum over keys runs along rows of ds
        d0, d1, d2, d3 = dst[j, i0:], dst[j + 1, i0:], dst[j + 2, i0:], dst[j + 3, i0:]
        for i in range(ds.shape[0]):
            _store4(ds[i], j, False, d0[i], d1[i], d2[i], d3[i])
    _mix(ds, kt, dq[i0:], ds.shape[0], n_keys, -NO_LIMIT, i0 - lo + 1)


@njit(cache=True, fastmath=FASTMATH)
def _row_stats(lse, dout, out, lse_pad, di_pad):
    """lse_pad[:Tq] = lse and di_pad[:Tq] = di_i = dout_i . out_i. lse (Tq,), dout, out (Tq, hs),
    lse_pad, di_pad (Tq8,) whose padding stays +inf and 0."""
    for i in range(lse.shape[0]):
        lse_pad[i] = lse[i]
        dout_i, out_i, di = dout[i], out[i], 0.0
        for d in range(out.shape[1]):
            di += dout_i[d] * out_i[d]
        di_pad[i] = di


BackwardScratch = namedtuple("BackwardScratch", [
    "q", "dout", "k", "v",  # (Tq8, hs) q / sqrt(hs), (Tq8, hs); (Tk8, hs) each
    "q_t", "dout_t",  # (1, hs4, Tq8) each, q / sqrt(hs) and dout transposed: one tile of columns
    "k_t",  # (n_blocks, hs4, KEY_BLOCK) k transposed block by block
    "lse", "di",  # (Tq8,) each: the forward's lse (+inf in the padding: p = 0 there); dout.out
    "s_t", "dp_t", "ds",  # (KEY_BLOCK, Tq8) s^T then p^T, dp^T then ds^T; (Tq8, KEY_BLOCK) ds
    "dq", "dk", "dv",  # (Tq8, hs4) dq summed over key blocks; (KEY_BLOCK, hs4) one block's dk, dv
])


@njit(cache=True)
def _backward_scratch(q, Tk):
    """One worker's BackwardScratch, for q (B, H, Tq, hs) and Tk keys."""
    Tq8, Tk8, hs, x = _round_up(q.shape[2], 8), _round_up(Tk, 8), q.shape[3], q.dtype
    n_blocks, hs4 = (Tk8 + KEY_BLOCK - 1) // KEY_BLOCK, _round_up(hs, 4)
    return BackwardScratch(
        q=np.zeros((Tq8, hs), dtype=x), dout=np.zeros((Tq8, hs), dtype=x),
        k=np.zeros((Tk8, hs), dtype=x), v=np.zeros((Tk8, hs), dtype=x),
        q_t=np.zeros((1, hs4, Tq8), dtype=x), dout_t=np.zeros((1, hs4, Tq8), dtype=x),
        k_t=np.zeros((n_blocks, hs4, KEY_BLOCK), dtype=x),
        lse=np.full(Tq8, np.inf, dtype=x), di=np.zeros(Tq8, dtype=x),
        s_t=np.empty((KEY_BLOCK, Tq8), dtype=x), dp_t=np.empty((KEY_BLOCK, Tq8), dtype=x),
        ds=np.empty((Tq8, KEY_BLOCK), dtype=x), dq=np.empty((Tq8, hs4), dtype=x),
        dk=np.empty((KEY_BLOCK, hs4), dtype=x), dv=np.empty((KEY_BLOCK, hs4), dtype=x))


@njit(cache=True, fastmath=FASTMATH)
def _key_block(sc, t, n_keys, lo):
    """Key block t (KEY_BLOCK keys from j0 = t * KEY_BLOCK, n_keys of them real) against every
    query: -> sc.dk, sc.dv (KEY_BLOCK, hs4) its finished dk, dv; adds its share into sc.dq. Key
    row j is seen by the queries i >= j + lo."""
    j0, Tq8 = t * KEY_BLOCK, sc.q.shape[0]
    R = min(KEY_BLOCK, sc.k.shape[0] - j0)  # key rows, padded to a multiple of 8
    i0 = max(0, lo) // 16 * 16  # where _mix starts the sums over queries
    # No upper band edge. As an int64, like the forward's band edges: a bare NO_LIMIT would
    # be typed Literal[int], and _dots and _mix compiled a second time for it (~2 s cold).
    hi = np.int64(NO_LIMIT)
    sc.dk[:] = 0.0
    sc.dv[:] = 0.0
    _dots(sc.k[j0:], sc.q, sc.s_t, R, Tq8, lo, hi)  # s^T = k q^T / sqrt(hs)
    _dots(sc.v[j0:], sc.dout, sc.dp_t, R, Tq8, lo, hi)  # dp^T = v dout^T
    _softmax_backward_tile(sc.s_t[:R], sc.dp_t[:R], sc.lse, sc.di, n_keys, i0, lo)
    _mix(sc.s_t, sc.dout_t[0], sc.dv, R, Tq8, lo, hi)  # dv = p^T dout
    _mix(sc.dp_t, sc.q_t[0], sc.dk, R, Tq8, lo, hi)  # dk = ds^T q / sqrt(hs)
    _dq_block(sc.dp_t, sc.k_t[t], sc.ds, sc.dq, n_keys, lo)  # dq += ds k


@njit(cache=True, fastmath=FASTMATH)
def _head_backward(dout, q, k, v, out, lse, causal, dq, dk, dv, sc):
    """One (batch, head), shapes as _head_forward's, dq, dk, dv as q, k, v; sc: BackwardScratch."""
    (Tq, hs), Tk = q.shape, k.shape[0]
    scale = 1.0 / np.sqrt(hs)
    _copy_rows(q, scale, sc.q[:Tq])  # q / sqrt(hs)
    _copy_rows(dout, 1.0, sc.dout[:Tq])
    _copy_rows(k, 1.0, sc.k[:Tk])
    _copy_rows(v, 1.0, sc.v[:Tk])
    _transpose_tiles(sc.q, sc.q_t)
    _transpose_tiles(sc.dout, sc.dout_t)
    _transpose_tiles(sc.k, sc.k_t)
    _row_stats(lse, dout, out, sc.lse, sc.di)
    sc.dq[:] = 0.0
    for t in range(sc.k_t.shape[0]):  # key blocks, each finishing its rows of dk and dv
        j0 = t * KEY_BLOCK
        n_keys = min(KEY_BLOCK, Tk - j0)
        lo = j0 - (Tk - Tq) if causal else -NO_LIMIT  # key row j is seen by queries i >= j + lo
        _key_block(sc, t, n_keys, lo)
        _copy_rows(sc.dk, 1.0, dk[j0:j0 + n_keys])
        _copy_rows(sc.dv, 1.0, dv[j0:j0 + n_keys])
    _copy_rows(sc.dq, scale, dq)  # dq = sum_j ds_ij k_j / sqrt(hs)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _backward_worker(dout, q, k, v, out, lse, causal, dq, dk, dv, w, workers):
    """Gradients for _forward_worker's heads, arrays (B, H, ., .) as there; dq, dk, dv in place
    (each (batch, head) owns its rows of them)."""
    B, H = q.shape[0], q.shape[1]
    scratch = _backward_scratch(q, k.shape[2])
    for h in range(w, B * H, workers):
        b, hh = h // H, h % H
        _head_backward(dout[b, hh], q[b, hh], k[b, hh], v[b, hh], out[b, hh], lse[b, hh],
                       causal, dq[b, hh], dk[b, hh], dv[b, hh], scratch)


def attention_backward_tiled(dout, q, k, v, out, lse, causal=True):
    """Same contract as attention_backward_ref. -> dq (B,H,Tq,hs), dk, dv (B,H,Tk,hs)."""
    dq = np.empty(q.shape, dtype=q.dtype)  # (B, H, Tq, hs)
    dk, dv = np.empty(k.shape, dtype=q.dtype), np.empty(v.shape, dtype=q.dtype)  # (B, H, Tk, hs)
    run_workers(_backward_worker, min(threads(), q.shape[0] * q.shape[1]), dout, q, k, v, out,
                lse, causal, dq, dk, dv)
    return dq, dk, dv
