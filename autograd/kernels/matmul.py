"""Matrix multiplication, the op where nearly all of a transformer's FLOPs go.

Versions:
  1. `matmul_ref`: NumPy's `@`, which hands the work to BLAS.
  2. `matmul_numba`: the textbook tiled loop nest, parallel over row tiles. It exists to be read
     and measured, not used: see benchmarks/kernels.py, where BLAS wins at every model shape.
  3. `matmul_blas`: BLAS too, but when b is a plain matrix it folds a's leading axes into its
     rows, so (B, T, C) @ (C, N) is one (B*T, C) @ (C, N) GEMM instead of B small ones.
  4. `matmul_few_rows`: a few rows times a large matrix, the shape of decoding a handful of
     tokens through the graph (a batch of a few prompts; tinyllm/decode.py has its own). BLAS's
     GEMM works on blocks of rows as tall as its micro-kernel, padding what is missing, so 2-7
     rows cost 3-5x one row (a matrix-vector product): over the 24 weight matrices of the
     shakespeare-char model (42 MB), 4 rows took 2.29 ms against 0.71 ms for one (`python
     benchmarks/kernels.py --decode`). Here threads take blocks of b's columns and stream each
     block once per pair of rows (from cache after the first pair), four rows of b at a time:
     1.26 ms for 4 rows.
  `matmul_fast`, the production path, picks 4 for 2..FEW_ROWS rows against a large matrix, else 3.

Shapes: a (..., M, K) @ b (..., K, N) -> (..., M, N), leading axes broadcast.
"""
import numpy as np

from .numba_support import FASTMATH, njit, prange

# --- reference ---


def matmul_ref(a, b):
    """a (..., M, K), b (..., K, N) -> (..., M, N)."""
    return np.matmul(a, b)


# --- numba ---

# A tile of a's rows (ROW_TILE x K_TILE) and of b (K_TILE x N_TILE) fit in L1/L2 cache together.
ROW_TILE, K_TILE, N_TILE = 32, 128, 256


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _matmul_tiled(a, b, out):
    """a (Z, M, K) @ b (Z, K, N) -> out (Z, M, N), zero on entry, written in place."""
    Z, M, K = a.shape
    N = b.shape[2]
    n_row_tiles = (M + ROW_TILE - 1) // ROW_TILE
    for t in prange(Z * n_row_tiles):  # every (matrix, row tile) pair is an independent task
        z, i0 = t // n_row_tiles, (t % n_row_tiles) * ROW_TILE
        for k0 in range(0, K, K_TILE):  # cache blocking: reuse one (K_TILE, N_TILE) block of b
            for j0 in range(0, N, N_TILE):  # across all ROW_TILE rows of a
                for i in range(i0, min(i0 + ROW_TILE, M)):
                    # Slices, so the innermost index runs from 0. Numba honours negative indices,
                    # so out[z, i, j0 + j] would cost a "j0 + j < 0?" test per element, which
                    # keeps LLVM from vectorising: measured 5x slower.
                    out_row = out[z, i, j0:j0 + N_TILE]  # (<= N_TILE,)
                    for kk in range(k0, min(k0 + K_TILE, K)):
                        aik = a[z, i, kk]
                        b_row = b[z, kk, j0:j0 + N_TILE]  # (<= N_TILE,)
                        for j in range(out_row.shape[0]):  # contiguous: one SIMD axpy
                            out_row[j] += aik * b_row[j]


def _as_batches(a, b):
    """Broadcast a (..., M, K), b (..., K, N) to contiguous (Z, M, K), (Z, K, N) and the
    output's shape (..., M, N)."""
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = np.ascontiguousarray(np.broadcast_to(a, lead + a.shape[-2:])).reshape(-1, *a.shape[-2:])
    b3 = np.ascontiguousarray(np.broadcast_to(b, lead + b.shape[-2:])).reshape(-1, *b.shape[-2:])
    return a3, b3, lead + (a.shape[-2], b.shape[-1])


def matmul_numba(a, b):
    """Same contract as matmul_ref, for a and b of at least 2 dimensions."""
    a3, b3, shape = _as_batches(a, b)  # (Z, M, K), (Z, K, N)
    out = np.zeros((a3.shape[0], a3.shape[1], b3.shape[2]), dtype=np.result_type(a, b))
    _matmul_tiled(a3, b3, out)
    return out.reshape(shape)


def matmul_blas(a, b):
    """Same contract as matmul_ref; one GEMM when b is a matrix. a (..., M, K) -> (..., M, N)."""
    if b.ndim == 2 and a.ndim > 2:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])
    return np.matmul(a, b)


# --- few rows ---

# At most FEW_ROWS rows (8 and up measured faster in BLAS), and b of at least
# FEW_ROWS_MIN_SIZE numbers (below that, BLAS costs less than waking threads). Threads take
# blocks of COLUMN_BLOCK columns: even the narrowest matrix of the model (N = 384) makes 6.
FEW_ROWS, FEW_ROWS_MIN_SIZE, COLUMN_BLOCK = 7, 1 << 17, 64


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _row_pair(a, b, out, i, K, N, j0, n):
    """out[i:i+2, j0:j0+n] += a[i:i+2] @ b[:, j0:j0+n], on the flattened C-contiguous arrays.

    Four rows of b are loaded per pass and each value serves both rows of a: eight multiply-
    adds per four loads of b and two loads and stores of out. The indices are unsigned, so
    Numba emits no negative-index test per element, which would keep LLVM from vectorising."""
    r0 = np.uint64(i * N) + j0  # where the two output rows' blocks start
    r1 = r0 + np.uint64(N)
    for k in range(0, K, 4):  # K is a multiple of 4 (zero-padded by matmul_few_rows)
        b0 = np.uint64(k * N) + j0  # where rows k .. k+3 of b's block start
        b1, b2, b3 = b0 + np.uint64(N), b0 + np.uint64(2 * N), b0 + np.uint64(3 * N)
        x = np.uint64(i * K + k)
        y = x + np.uint64(K)
        a0, a1, a2, a3 = a[x], a[x + np.uint64(1)], a[x + np.uint64(2)], a[x + np.uint64(3)]
        c0, c1, c2, c3 = a[y], a[y + np.uint64(1)], a[y + np.uint64(2)], a[y + np.uint64(3)]
        for j in range(n):
            v0, v1, v2, v3 = b[b0 + j], b[b1 + j], b[b2 + j], b[b3 + j]
            out[r0 + j] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
            out[r1 + j] += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _few_rows(a, b, out):
    """a (M, K) @ b (K, N) -> out (M, N); C-contiguous, M even, K a multiple of 4, out zero."""
    M, K = a.shape
    N = b.shape[1]
    flat_a, flat_b, flat_out = a.ravel(), b.ravel(), out.ravel()
    for block in prange((N + COLUMN_BLOCK - 1) // COLUMN_BLOCK):
        j0 = block * COLUMN_BLOCK
        n = np.uint64(min(COLUMN_BLOCK, N - j0))
        for i in range(0, M, 2):  # the block of b is in cache after the first pair
            _row_pair(flat_a, flat_b, flat_out, i, K, N, np.uint64(j0), n)


def matmul_few_rows(a, b):
    """a (M, K) @ b (K, N) -> (M, N), for a few rows a and a matrix b of a's dtype.

    a is zero-padded to an even number of rows and both to a multiple of 4 along K, each only
    if it is not so already (the model's K are): an odd row costs the same as a pair, measured."""
    (M, K), N = a.shape, b.shape[1]
    M2, K4 = M + M % 2, -(-K // 4) * 4
    if (M2, K4) == (M, K):
        padded_a = np.ascontiguousarray(a)
    else:
        padded_a = np.zeros((M2, K4), dtype=a.dtype)
        padded_a[:M, :K] = a
    if K4 != K or not b.flags.c_contiguous:
        b = np.concatenate([b, np.zeros((K4 - K, N), dtype=b.dtype)])  # (K4, N), contiguous
    out = np.zeros((M2, N), dtype=a.dtype)
    _few_rows(padded_a, b, out)
    return out[:M]


def matmul_fast(a, b):
    """Same contract as matmul_ref: matmul_few_rows where it wins, else matmul_blas."""
    rows = a.size // a.shape[-1] if a.ndim >= 2 and a.shape[-1] else 0
    if (b.ndim == 2 and 2 <= rows <= FEW_ROWS and b.size >= FEW_ROWS_MIN_SIZE
            and b.flags.c_contiguous and a.dtype == b.dtype):
        return matmul_few_rows(a.reshape(rows, a.shape[-1]), b).reshape(*a.shape[:-1], -1)
    return matmul_blas(a, b)
