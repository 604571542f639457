"""Matrix-vector products, the op of decoding a token: each weight is read once per token.

One token's forward multiplies a single row vector by every weight matrix of the model, so the
time goes to streaming the weights from memory, not to arithmetic (2 FLOPs per 4-byte weight,
while a core could do thousands of FLOPs in the time one cache line arrives). So: read fewer
bytes (int8 weights, a quarter of float32's), and lose no time between the matrices. A few
tokens at once (a short prompt, speculative decoding's verify pass) are a few rows x (M, K):
each weight, read once, then serves M rows, so M tokens cost far less than M steps (BLAS packs
the whole matrix first for such a product: GPT-2's float32 matrices at M = 16 took it 55 ms,
at M = 1 16 ms).

The weights may be int8 with one float scale per output channel (tinyllm/quantize.py): the
weight is q[k, j] * scale[j], and because the scale belongs to the output j it factors out of
the sum, so each weight is converted to float, multiplied and accumulated, and the scale is
applied once per output:
    out[i, j] = sum_k x[i, k] (q[k, j] scale[j]) = scale[j] * sum_k x[i, k] q[k, j]
A float32 matrix takes the same path with scale = 1.

Versions, each for both weight layouts (Linear's (in, out) and the output head's (V, C)):
  1. `vecmat_ref(x, w, scale)` = (x @ w) * scale and `matvec_ref(w, x, scale)` =
     (x @ w^T) * scale: NumPy, the specification.
  2. `vecmat_numba`, `matvec_numba`: explicit loops over float32/float64 or int8 weights,
     accumulating in x's dtype; int8 rows are requested from memory ahead of use (_prefetch)
     and, in vecmat for several rows of x, converted to float once for all of them (matvec
     serves float heads: decode.py streams an int8 head through vecmat). A large matrix is
     split across threads, by columns for vecmat and by rows for matvec, so each output is
     still summed in one fixed order: the result does not depend on the thread count. A small
     one runs on the calling thread (PARALLEL_MIN_SIZE): a parallel region costs ~2 us while
     the other OpenMP thread still spins after the last one (threads.py: ~0.1 ms), as it does
     between the products of a decoding step, but ~100 us on our VM once it sleeps.
They are plain functions of arrays, callable from other compiled code (tinyllm/decode.py).

Shapes: M rows (tokens), K inputs, N outputs.
Left out: int4 and group-wise scales (one scale per block of K, as llama.cpp's q4_0), int8
activations (integer dot products: VNNI), BLAS for float matrices (it has no int8 GEMV, and
compiled code reaches BLAS only through SciPy, which we do not depend on).
"""
import numpy as np
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic

from .numba_support import FASTMATH, njit, prange

# Below this many weights a matrix is multiplied on the calling thread (see above). 2^17 since
# OpenMP's threads spin briefly (threads.py); with 2^20, from when they slept at once, the
# shakespeare-char shape's compiled int8 decoding ran at 639-670 tok/s, with 2^17 at 831-917
# (2^16: 787-844, 2^18: 767-798). GPT-2's 768x768 matrices moved to two threads too: its int8
# decoding 75-78 -> 76-81 tok/s, float32 36.3-36.6 -> 39.5-40.0. Alternating runs.
PARALLEL_MIN_SIZE = 1 << 17
# A large matrix is cut into one block per thread of Numba's pool. Not get_num_threads(), the
# count in use now: calling that inside compiled code keeps Numba from caching the kernel. With
# fewer threads in use (threads.limited), a thread takes several blocks in turn.
N_BLOCKS = config.NUMBA_NUM_THREADS

# --- reference ---


def vecmat_ref(x, w, scale):
    """x (M, K) @ w (K, N), output j times scale[j] -> (M, N) in x's dtype. w float or int8.

    >>> x, scale = np.array([1.0, 2.0]), np.array([0.5, 2.0])
    >>> vecmat_ref(x[None], np.array([[1, 0], [1, -1]], np.int8), scale)   # [3, -2] * scale
    array([[ 1.5, -4. ]])
    """
    return (x @ w.astype(x.dtype)) * scale  # (M, N)


def matvec_ref(w, x, scale):
    """w (N, K) times each row of x (M, K), output n times scale[n] -> (M, N) in x's dtype: so
    x @ w^T. w float or int8.

    >>> x, scale = np.array([[1.0, 2.0]]), np.array([0.5, 2.0])
    >>> matvec_ref(np.array([[1, 1], [0, -1]], np.int8), x, scale)   # [3, -2] * scale
    array([[ 1.5, -4. ]])
    """
    return (x @ w.astype(x.dtype).T) * scale  # (M, N)


# --- numba ---

# Rows of int8 weights requested this far ahead of the loop (measured: 4 to 16 all gain).
PREFETCH_ROWS = 8
CACHE_LINE = 64  # bytes


@intrinsic
def _prefetch(typingctx, flat, i):
    """Ask the CPU to start loading the cache line that holds flat[i] (a 1-D array) into cache:
    LLVM's llvm.prefetch, a hint that costs one instruction and never faults."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        byte_ptr = ir.IntType(8).as_pointer()
        address = builder.bitcast(builder.gep(array.data, [args[1]]), byte_ptr)
        int32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, int32, int32, int32]),
            "llvm.prefetch.p0i8")
        # read (0), keep in all cache levels (locality 3), data not instructions (1)
        builder.call(fn, [address, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.none(flat, i), codegen


@njit(cache=True)
def _prefetch_rows(w, rows, j0, j1):
    """Request rows `rows` of w (K, N), columns j0:j1, from memory ahead of their use.

    Only int8 weights: streaming them from memory, the loop waits for every cache line, since
    the hardware prefetcher runs too little ahead of a loop that converts and multiplies 64
    weights per line. Requesting the lines PREFETCH_ROWS rows early made GPT-2 124M's int8
    matrices 1.45x faster (15 alternating rounds); float32 ones (16 weights a line, which the
    hardware keeps up with) 1.47x slower, from the extra instructions: so int8 only."""
    if w.itemsize == 1:  # known when compiling: the branch vanishes for float weights
        flat = w.ravel()  # (K N,) a view
        for r in rows:
            for j in range(j0, j1, CACHE_LINE):  # one int8 cache line: 64 weights
                _prefetch(flat, r * w.shape[1] + j)


# Partial sums per thread at most this many floats (16 KiB of float32): with several rows they
# would outgrow L1, so a thread's columns are then taken in narrower chunks.
ACC_FLOATS = 4096


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _axpy4(acc, x0, x1, x2, x3, w0, w1, w2, w3):
    """acc[j] += x0 w0[j] + x1 w1[j] + x2 w2[j] + x3 w3[j] for every j of acc (n,): one load
    and store of acc serves four weights. The views start the index at 0, which lets LLVM
    vectorise the loop (matmul.py says why); int8 weights become floats here, a SIMD lane each.
    """
    for j in range(acc.shape[0]):
        acc[j] += x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]


@njit(cache=True, inline="always")
def _prefetch_below(flat, N, k, K, j):
    """Request the int8 cache line at column j of rows k + PREFETCH_ROWS .. +3 of w (K, N), given
    flat, w raveled (see _prefetch_rows). Called once per line the pass reads, so the requests
    spread through the loop rather than all of a pass's at its start (ad hoc: a (768, 36864)
    matrix streamed at 16.5 -> 21 GB/s, GPT-2's block matrices took 4.8 -> 4.2 ms a token)."""
    for r in range(k + PREFETCH_ROWS, min(k + PREFETCH_ROWS + 4, K)):
        _prefetch(flat, r * N + j)


@njit(cache=True, inline="always")
def _convert4(f0, f1, f2, f3, w0, w1, w2, w3):
    """f0[j], .., f3[j] = w0[j], .., w3[j] as floats: four rows of int8 weights converted once.
    A loop, as _axpy4's: slice assignments (f0[:] = w0) made GPT-2's products of two rows 2.5x
    slower (ad hoc)."""
    for j in range(f0.shape[0]):
        f0[j], f1[j], f2[j], f3[j] = w0[j], w1[j], w2[j], w3[j]


@njit(cache=True, fastmath=FASTMATH)
def _vecmat_columns(x, w, scale, out, j0, j1):
    """out[:, j0:j1] = (x @ w[:, j0:j1]) * scale[j0:j1], on the calling thread. x (M, K)."""
    M, K = x.shape
    N = w.shape[1]
    width = max(16, min(j1 - j0, ACC_FLOATS // M // 16 * 16))  # columns a chunk
    int8 = w.itemsize == 1  # known when compiling: the branches below vanish for float weights
    acc = np.empty((M, width), dtype=out.dtype)  # (M, width) partial sums, in L1
    # four rows of int8 weights, converted for several rows of x (else empty: not allocated)
    floats = np.empty((4, width if int8 and M > 1 else 0), dtype=out.dtype)
    flat = w.ravel()  # (K N,) a view, for the prefetches
    for c0 in range(j0, j1, width):
        c1 = min(j1, c0 + width)
        n = c1 - c0
        acc[:] = 0.0
        for k in range(0, K - K % 4, 4):  # four rows of w a pass
            w0, w1, w2, w3 = w[k, c0:c1], w[k + 1, c0:c1], w[k + 2, c0:c1], w[k + 3, c0:c1]
            if not int8:  # float: straight from w, all n columns at once (as the segments
                for i in range(M):  # below, GPT-2's float32 decoding ran 7% slower)
                    _axpy4(acc[i, :n], x[i, k], x[i, k + 1], x[i, k + 2], x[i, k + 3],
                           w0, w1, w2, w3)
            elif M > 1:  # int8, several rows: convert the four rows once for all of them
                f0, f1, f2, f3 = floats[0, :n], floats[1, :n], floats[2, :n], floats[3, :n]
                for s in range(0, n, CACHE_LINE):  # a cache line of columns at a time
                    e = min(n, s + CACHE_LINE)
                    _prefetch_below(flat, N, k, K, c0 + s)
                    _convert4(f0[s:e], f1[s:e], f2[s:e], f3[s:e], w0[s:e], w1[s:e], w2[s:e],
                              w3[s:e])
                for i in range(M):
                    _axpy4(acc[i, :n], x[i, k], x[i, k + 1], x[i, k + 2], x[i, k + 3],
                           f0, f1, f2, f3)
            else:  # int8, one row: straight from w (converting first cost +30%)
                x0, x1, x2, x3, a = x[0, k], x[0, k + 1], x[0, k + 2], x[0, k + 3], acc[0]
                for s in range(0, n, CACHE_LINE):
                    e = min(n, s + CACHE_LINE)
                    _prefetch_below(flat, N, k, K, c0 + s)
                    _axpy4(a[s:e], x0, x1, x2, x3, w0[s:e], w1[s:e], w2[s:e], w3[s:e])
        for k in range(K - K % 4, K):  # the last K % 4 rows
            for i in range(M):
                for j in range(n):
                    acc[i, j] += x[i, k] * w[k, c0 + j]
        for i in range(M):
            for j in range(n):
                out[i, c0 + j] = acc[i, j] * scale[c0 + j]


# inline="always": a compiled caller gets the parallel loop itself, so the caller (which must be
# parallel=True for Numba to cache it) has a loop to parallelise (tinyllm/decode.py).
@njit(cache=True, parallel=True, fastmath=FASTMATH, inline="always")
def vecmat_numba(x, w, scale):
    """Same contract as vecmat_ref, for rows x (M, K), w (K, N), scale (N,) -> (M, N)."""
    N = w.shape[1]
    out = np.empty((x.shape[0], N), dtype=x.dtype)  # (M, N)
    if w.size < PARALLEL_MIN_SIZE or N_BLOCKS == 1:
        _vecmat_columns(x, w, scale, out, 0, N)
        return out
    # one block of columns per thread, a multiple of 16 wide (whole cache lines)
    width = ((N + N_BLOCKS - 1) // N_BLOCKS + 15) // 16 * 16
    for b in prange(N_BLOCKS):
        _vecmat_columns(x, w, scale, out, min(N, b * width), min(N, (b + 1) * width))
    return out


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _dots(row, x, out, n, scale):
    """out[i, n] = (row . x[i]) * scale for every row i of x (M, K); row (K,)."""
    for i in range(x.shape[0]):
        total = x.dtype.type(0.0)
        for k in range(row.shape[0]):  # a dot product, vectorised by reordering the sum
            total += row[k] * x[i, k]
        out[i, n] = total * scale


@njit(cache=True, fastmath=FASTMATH)
def _matvec_rows(w, x, scale, out, n0, n1):
    """out[:, n0:n1] = (x @ w[n0:n1].T) * scale[n0:n1], on the calling thread. x (M, K)."""
    K = x.shape[1]
    for n in range(n0, n1):
        _prefetch_rows(w, range(n + PREFETCH_ROWS, min(n + PREFETCH_ROWS + 1, n1)), 0, K)
        _dots(w[n], x, out, n, scale[n])  # (K,) contiguous


@njit(cache=True, parallel=True, fastmath=FASTMATH, inline="always")  # as vecmat_numba
def matvec_numba(w, x, scale):
    """Same contract as matvec_ref, for rows x (M, K), w (N, K), scale (N,) -> (M, N)."""
    N = w.shape[0]
    out = np.empty((x.shape[0], N), dtype=x.dtype)  # (M, N)
    if w.size < PARALLEL_MIN_SIZE or N_BLOCKS == 1:
        _matvec_rows(w, x, scale, out, 0, N)
        return out
    # one block of rows per thread: a contiguous slab of memory each
    height = (N + N_BLOCKS - 1) // N_BLOCKS
    for b in prange(N_BLOCKS):
        _matvec_rows(w, x, scale, out, min(N, b * height), min(N, (b + 1) * height))
    return out
