"""autograd/kernels/gemv.py: the compiled products of a few rows and a matrix equal NumPy's
reference, for float and int8 weights, one row or several (int8 rows are then converted once),
at shapes that are not multiples of anything (K % 4, N % 16 != 0), on the calling thread and
split across threads, and the split does not change a single bit."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd.kernels import gemv, threads

RTOL = {np.float32: 1e-5, np.float64: 1e-10}
# (x's dtype, the weights' dtype): float weights, or int8 ones with float activations
KINDS = [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.int8),
         (np.float64, np.int8)]


def operands(seed, K, N, x_dtype, w_dtype, transposed=False, M=1):
    """x (M, K), w (K, N) (or (N, K) transposed), scale (N,): normal floats, or int8 weights
    spanning their whole range [-127, 127]."""
    rng = np.random.default_rng(seed)
    shape = (N, K) if transposed else (K, N)
    if w_dtype == np.int8:
        w = rng.integers(-127, 128, shape).astype(np.int8)
    else:
        w = rng.standard_normal(shape).astype(w_dtype)
    x = rng.standard_normal((M, K)).astype(x_dtype)
    return x, w, rng.uniform(0.5, 2.0, N).astype(x_dtype)


def assert_same(got, want, dtype):
    """Equal to RTOL[dtype] of want's largest magnitude, in x's dtype."""
    assert got.shape == want.shape and got.dtype == want.dtype == dtype
    scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL[dtype] * scale)


# one row reads int8 weights directly, several convert them first; N > 64: int8 columns are
# taken a cache line (64) at a time
SHAPES = dict(seed=st.integers(0, 2**32 - 1), M=st.integers(1, 9), K=st.integers(1, 40),
              N=st.integers(1, 150), kind=st.sampled_from(KINDS))


@given(**SHAPES)
def test_vecmat_equals_the_reference(seed, M, K, N, kind):
    x, w, scale = operands(seed, K, N, *kind, M=M)
    assert_same(gemv.vecmat_numba(x, w, scale), gemv.vecmat_ref(x, w, scale), kind[0])


@given(**SHAPES)
def test_matvec_equals_the_reference(seed, M, K, N, kind):
    x, w, scale = operands(seed, K, N, *kind, transposed=True, M=M)
    assert_same(gemv.matvec_numba(w, x, scale), gemv.matvec_ref(w, x, scale), kind[0])


def test_references_compute_the_definition():
    w = np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int8)  # (K, N) = (2, 3)
    x, scale = np.array([[2.0, -1.0]]), np.array([1.0, 0.5, 2.0])
    want = [[(2 * 1 - 4) * 1.0, (-4 - 5) * 0.5, (6 + 6) * 2.0]]  # sum_k x[k] w[k, j] scale[j]
    np.testing.assert_array_equal(gemv.vecmat_ref(x, w, scale), want)
    np.testing.assert_array_equal(gemv.matvec_ref(w.T.copy(), x, scale), want)


# larger than PARALLEL_MIN_SIZE, so split across threads; K % 4 = 3, N % 16 = 13
LARGE = (1031, 1021)


@pytest.mark.parametrize("kind", KINDS[:3])
# M = 9: a thread's 512 columns come in chunks of 448 (gemv.ACC_FLOATS)
@pytest.mark.parametrize("M", [1, 9])
def test_large_matrices_take_the_parallel_path_and_agree(kind, M):
    assert LARGE[0] * LARGE[1] >= gemv.PARALLEL_MIN_SIZE
    x, w, scale = operands(0, *LARGE, *kind, M=M)
    assert_same(gemv.vecmat_numba(x, w, scale), gemv.vecmat_ref(x, w, scale), kind[0])
    x, w, scale = operands(1, *LARGE, *kind, transposed=True, M=M)
    assert_same(gemv.matvec_numba(w, x, scale), gemv.matvec_ref(w, x, scale), kind[0])


@pytest.mark.parametrize("w_dtype", [np.float32, np.int8])
@pytest.mark.parametrize("M", [1, 9])
def test_the_result_does_not_depend_on_the_thread_count(w_dtype, M):
    x, w, scale = operands(2, *LARGE, np.float32, w_dtype, M=M)  # (M, K), (K, N), (N,)
    w_t = w.T.copy()  # (N, K): matvec gives the same products

    def both():
        return gemv.vecmat_numba(x, w, scale), gemv.matvec_numba(w_t, x, scale)

    together = both()
    with threads.limited(1):
        alone = both()
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)  # every output summed in the same order
