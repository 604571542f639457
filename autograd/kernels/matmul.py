"""Matrix multiplication, the op where nearly all of a transformer's FLOPs go.

Versions:
  1. `matmul_ref`: NumPy's `@`, which hands the work to BLAS.
  2. `matmul_numba`: the textbook tiled loop nest, parallel over row tiles. It exists to be read
     and measured, not used: see benchmarks/kernels.py, where BLAS wins at every model shape.
  3. `matmul_blas`: BLAS too, but when b is a plain matrix it folds a's leading axes into its
     rows, so (B, T, C) @ (C, N) is one (B*T, C) @ (C, N) GEMM instead of B small ones.
  4. `matmul_few_rows`: a few rows times a large matrix, the shape of decoding a handful of
     tokens through the graph (a batch of a few prompts, or one). BLAS's GEMM works on blocks
     of rows as tall as its micro-kernel and packs b first, so 2-7 rows cost 2-3x one row (a
     matrix-vector product; `python benchmarks/kernels.py --decode` measures both over the 24
     weight matrices of the shakespeare-char model). Here the product of a few rows that the
     compiled decoding step uses (gemv.py), each number of b read once for all rows.
  `matmul_fast`, the production path, picks 4 for up to FEW_ROWS rows against a large matrix,
  else 3.

Shapes: a (..., M, K) @ b (..., K, N) -> (..., M, N), leading axes broadcast.
"""
import numpy as np

from .gemv import vecmat_numba
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

# At most FEW_ROWS rows, and b of at least FEW_ROWS_MIN_SIZE numbers (below that, BLAS costs
# less than waking threads). Over the shakespeare-char model's 24 matrices (ad hoc, our Xeon):
# 1.2-2x faster than BLAS for 1-12 rows, equal at 16.
FEW_ROWS, FEW_ROWS_MIN_SIZE = 12, 1 << 17


@njit(cache=True, parallel=True)  # parallel: vecmat_numba's loop is inlined here (gemv.py)
def _few_rows(a, b, ones):
    return vecmat_numba(a, b, ones)  # (M, N)


def matmul_few_rows(a, b):
    """a (M, K) @ b (K, N) -> (M, N), for a few rows a and a matrix b of a's dtype: gemv.py's
    product of a few rows, which reads each number of b once for all M rows, with unit scales.
    """
    ones = np.ones(b.shape[1], dtype=a.dtype)  # (N,)
    return _few_rows(np.ascontiguousarray(a), np.ascontiguousarray(b), ones)


def matmul_fast(a, b):
    """Same contract as matmul_ref: matmul_few_rows where it wins, else matmul_blas."""
    rows = a.size // a.shape[-1] if a.ndim >= 2 and a.shape[-1] else 0
    if (b.ndim == 2 and 1 <= rows <= FEW_ROWS and b.size >= FEW_ROWS_MIN_SIZE
            and b.flags.c_contiguous and a.dtype == b.dtype):
        return matmul_few_rows(a.reshape(rows, a.shape[-1]), b).reshape(*a.shape[:-1], -1)
    return matmul_blas(a, b)
