"""Matrix multiplication, the op where nearly all of a transformer's FLOPs go.

Versions:
  1. `matmul_ref`: NumPy's `@`, which hands the work to BLAS.
  2. `matmul_numba`: the textbook tiled loop nest, parallel over row tiles. It exists to be read
     and measured, not used: see benchmarks/kernels.py, where BLAS wins at every model shape.
  3. `matmul_blas`: the production path. It is BLAS too, but when b is a plain matrix it folds
     a's leading axes into its rows, so (B, T, C) @ (C, N) is one (B*T, C) @ (C, N) GEMM instead
     of B small ones.

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
