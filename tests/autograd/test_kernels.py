"""autograd/kernels: every Numba kernel equals its NumPy reference, and the switch behaves.

"Equals" means, elementwise, |numba - ref| <= rtol * max(max|ref|, 1) with rtol 1e-10 in
float64 and 1e-5 in float32: relative to the array's scale (our inputs are of order 1), because
a float32 sum can cancel to a value near zero whose own relative error means nothing, e.g. the
gradient through a softmax over one key, which is exactly 0 but is 1e-7 of rounding in NumPy.
Shapes are drawn to be awkward: single rows, T = 1, sizes that are not multiples of any tile,
one head, queries shorter than keys.
"""
import contextlib
import os
import signal
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd import kernels
from autograd.kernels import (
    attention,
    attention_tiled,
    cross_entropy,
    dropout,
    fast_exp,
    gelu,
    layer_norm,
    matmul,
    numba_support,
    softmax,
    threads,
)

pytestmark = pytest.mark.skipif("numba" not in kernels.BACKENDS, reason="numba not installed")
RTOL = {np.float32: 1e-5, np.float64: 1e-10}
dtypes = st.sampled_from([np.float32, np.float64])
workers = st.integers(1, 5)  # kernels that share out rows with run_workers: at times more than rows


def arrays(data, shape, dtype, scale=3.0):
    """Normal values times `scale`, drawn from a hypothesis seed so failures reproduce."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def assert_same(got, want, dtype, terms=()):
    """Each array in got equals the one in want to RTOL[dtype] of want's largest magnitude, or
    of terms[i] for the i-th (the size of what it sums, when that cancels), if larger."""
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    terms = tuple(terms) + (0.0,) * (len(want) - len(terms))
    for g, w, t in zip(got, want, terms, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert np.isfinite(g).all()
        scale = max(float(np.abs(w).max(initial=0.0)), t, 1.0)
        np.testing.assert_allclose(g, w, rtol=0, atol=RTOL[dtype] * scale)


EXP_RANGE = {np.float64: (-708.0, 709.0, 1e-15), np.float32: (-87.0, 88.0, 2e-7)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_matches_numpy_across_its_range(dtype):
    low, high, rtol = EXP_RANGE[dtype]
    x = np.linspace(low, high, 100_003).astype(dtype)  # (n,)
    got = fast_exp.exp_array(x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, np.exp(x.astype(np.float64)), rtol=rtol, atol=0)


@given(x=st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=20), dtype=dtypes)
def test_exp_is_zero_or_inf_outside_its_range(x, dtype):
    low, high, rtol = EXP_RANGE[dtype]
    x = np.array(x, dtype=dtype)  # (n,)
    inside = np.exp(np.clip(x, low, high).astype(np.float64))  # (n,)
    want = np.where(x < low, 0.0, np.where(x > high, np.inf, inside))  # (n,)
    np.testing.assert_allclose(fast_exp.exp_array(x), want.astype(dtype), rtol=rtol, atol=0)


@contextlib.contextmanager
def split_among(workers):
    """Within the block, kernels that share their work out with run_workers (workers_for) use
    `workers` workers at any size, not only at PARALLEL_MIN elements and up."""
    with mock.patch.object(numba_support, "PARALLEL_MIN", 0), \
            mock.patch.object(numba_support, "threads", lambda: workers):
        yield


def check_pair(module, name, dtype, forward_args, backward_args, workers=1):
    """module.<name>_forward and _backward: Numba equals the reference, both directions, the
    Numba kernels split among `workers` workers.

    backward_args(forward outputs) gives the backward's arguments, so the backward runs on what
    the forward saved, as it does in the graph.
    """
    versions = {v: getattr(module, f"{name}_forward_{v}") for v in ("ref", "numba")}
    want = versions["ref"](*forward_args)
    with split_among(workers):
        assert_same(versions["numba"](*forward_args), want, dtype)
    args = backward_args(*want) if isinstance(want, tuple) else backward_args(want)
    want = getattr(module, f"{name}_backward_ref")(*args)
    with split_among(workers):
        assert_same(getattr(module, f"{name}_backward_numba")(*args), want, dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), dtype=dtypes, n=st.integers(1, 9), v=st.integers(1, 150))
def test_softmax_family(name, data, dtype, n, v):
    x, dy = arrays(data, (n, v), dtype), arrays(data, (n, v), dtype)
    check_pair(softmax, name, dtype, (x,), lambda y: (dy, y), data.draw(workers))


@given(data=st.data(), dtype=dtypes, n=st.integers(1, 20), v=st.integers(1, 80))
def test_cross_entropy(data, dtype, n, v):
    logits = arrays(data, (n, v), dtype)
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))  # may drop every row
    targets = np.where(keep, arrays(data, n, np.float64, 1e3).astype(np.int64) % v, -100)
    check_pair(cross_entropy, "cross_entropy", dtype, (logits, targets),
               lambda loss, lse: (loss, logits, targets, lse), data.draw(workers))


@given(data=st.data(), dtype=dtypes, n=st.integers(1, 20), v=st.integers(1, 80),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_reductions(data, dtype, n, v, reduction):
    logits = arrays(data, (n, v), dtype)
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))  # may drop every row
    targets = np.where(keep, np.arange(n) % v, 7)  # ignore_index 7: also a valid class if v > 7
    dloss = arrays(data, n if reduction == "none" else (), dtype)
    check_pair(cross_entropy, "cross_entropy", dtype, (logits, targets, 7, reduction),
               lambda loss, lse: (dloss, logits, targets, lse, 7, reduction), data.draw(workers))


def test_cross_entropy_rejects_a_target_out_of_range():
    with pytest.raises(IndexError):
        cross_entropy.cross_entropy_forward_numba(np.zeros((2, 3)), np.array([0, 3]))


@pytest.mark.parametrize("fn", [softmax.softmax_forward_numba, softmax.log_softmax_forward_numba])
def test_huge_logits_stay_finite(fn):
    x = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]], dtype=np.float32)
    assert_same(fn(x), getattr(softmax, fn.__name__.replace("numba", "ref"))(x), np.float32)
    loss, lse = cross_entropy.cross_entropy_forward_numba(x, np.array([1, 0, 2]))
    assert np.isfinite(loss) and np.isfinite(lse).all()


@given(data=st.data(), dtype=dtypes, lead=st.lists(st.integers(1, 5), min_size=1, max_size=2),
       c=st.integers(1, 70), bias=st.booleans())
def test_layer_norm(data, dtype, lead, c, bias):
    x, dout = arrays(data, (*lead, c), dtype), arrays(data, (*lead, c), dtype)
    w, b = arrays(data, c, dtype), arrays(data, c, dtype) if bias else None
    check_pair(layer_norm, "layer_norm", dtype, (x, w, b),
               lambda out, mean, rstd: (dout, x, w, mean, rstd), data.draw(workers))


@given(data=st.data(), dtype=dtypes, n=st.integers(1, 40), c=st.integers(1, 70))
def test_rms_norm(data, dtype, n, c):
    x, dout, w = arrays(data, (n, c), dtype), arrays(data, (n, c), dtype), arrays(data, c, dtype)
    check_pair(layer_norm, "rms_norm", dtype, (x, w), lambda out, rstd: (dout, x, w, rstd),
               data.draw(workers))


@given(data=st.data(), dtype=dtypes, shape=st.lists(st.integers(1, 20), min_size=1, max_size=3))
def test_gelu(data, dtype, shape):
    x, dout = arrays(data, shape, dtype, scale=4.0), arrays(data, shape, dtype)
    check_pair(gelu, "gelu", dtype, (x,), lambda out: (dout, x), data.draw(workers))


@given(data=st.data(), dtype=dtypes, shape=st.lists(st.integers(1, 20), min_size=1, max_size=3),
       p=st.sampled_from([0.0, 0.1, 0.5, 0.9]))
def test_dropout(data, dtype, shape, p):
    x, dout = arrays(data, shape, dtype), arrays(data, shape, dtype)
    bits = dropout.random_bits(shape, np.random.default_rng(data.draw(st.integers(0, 99))))
    args = (bits, dropout.keep_threshold(p), 1.0 / (1.0 - p))
    check_pair(dropout, "dropout", dtype, (x, *args), lambda out: (dout, *args), data.draw(workers))


def test_dropout_bits_are_uniform_and_the_threshold_stays_in_range():
    bits = dropout.random_bits((1001,), np.random.default_rng(0))  # an odd count: half a word
    assert bits.shape == (1001,) and len(np.unique(bits)) == 1001  # 32-bit values: no repeats
    many = dropout.random_bits((200_000,), np.random.default_rng(1))
    assert abs((many >= dropout.keep_threshold(0.3)).mean() - 0.7) < 0.005  # 1 - p kept
    assert dropout.keep_threshold(1 - 2.0**-40) == 2**32 - 1  # rounds to 2^32: clamped


def test_run_workers_runs_every_worker_once_and_raises_their_errors():
    seen = []
    numba_support.run_workers(lambda tag, w, n: seen.append((tag, w, n)), 3, "x")
    assert sorted(seen) == [("x", 0, 3), ("x", 1, 3), ("x", 2, 3)]

    def fail(w, n):
        if w == 1:  # a worker on one of our threads
            raise ValueError("worker 1 failed")

    with pytest.raises(ValueError, match="worker 1 failed"):
        numba_support.run_workers(fail, 2)


def test_run_workers_works_in_a_forked_child():
    numba_support.run_workers(lambda w, n: None, 2)  # the pool exists now
    pid = os.fork()
    if pid == 0:  # the child: its copy of the pool has no threads
        seen = []
        numba_support.run_workers(lambda w, n: seen.append(w), 2)
        os._exit(0 if sorted(seen) == [0, 1] else 1)
    for _ in range(300):  # 30 s; a child stuck waiting for threads it lacks is killed
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("run_workers hung in a forked child")
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("worker", [
    attention_tiled._forward_worker, attention_tiled._backward_worker, layer_norm._norm_rows,
    layer_norm._norm_backward_rows, gelu._gelu_flat, gelu._gelu_backward_flat,
    cross_entropy._cross_entropy_rows, cross_entropy._cross_entropy_backward_rows,
    dropout._dropout_flat, softmax._softmax_rows, softmax._softmax_backward_rows,
    softmax._log_softmax_rows, softmax._log_softmax_backward_rows])
def test_workers_release_the_gil(worker):
    assert worker.targetoptions["nogil"]  # else run_workers' threads run them in turn


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_layer_norm_backward_gives_the_same_bits_however_many_workers(workers):
    # dw and db sum over every row: in N_PARTS fixed blocks, whoever computes them, so the
    # sums are added in one order and the result is bit for bit the same
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((2, 37, 50)), rng.standard_normal((2, 37, 50))  # (B, T, C)
    w, b = rng.standard_normal(50), rng.standard_normal(50)
    _, mean, rstd = layer_norm.layer_norm_forward_numba(x, w, b)
    alone = layer_norm.layer_norm_backward_numba(dout, x, w, mean, rstd)
    with split_among(workers):
        split = layer_norm.layer_norm_backward_numba(dout, x, w, mean, rstd)
    for a, s in zip(alone, split, strict=True):
        np.testing.assert_array_equal(a, s)


@given(n=st.integers(0, 100), workers=st.integers(1, 9))
def test_shares_are_contiguous_and_cover_every_item_once(n, workers):
    shares = [numba_support.share(n, w, workers) for w in range(workers)]
    assert shares[0][0] == 0 and shares[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))  # each starts where one ends
    sizes = [hi - lo for lo, hi in shares]
    assert max(sizes) - min(sizes) <= 1  # as even as whole items allow


def test_small_work_stays_on_one_worker():
    assert numba_support.workers_for(numba_support.PARALLEL_MIN - 1) == 1
    assert numba_support.workers_for(numba_support.PARALLEL_MIN) == numba_support.threads()


# Versions 2 and 3 of attention (kernels/attention.py, attention_tiled.py), each tested equal to
# version 1, the reference.
ATTENTION_VERSIONS = {
    "numba": (attention.attention_forward_numba, attention.attention_backward_numba),
    "tiled": (attention_tiled.attention_forward_tiled, attention_tiled.attention_backward_tiled),
}


def largest(x):
    return float(np.abs(x).max(initial=0.0))


def check_attention(version, dtype, q, k, v, dout, causal=True):
    """The version's forward and backward equal the reference's, the backward run on what the
    reference's forward saved (out, lse), as it is in the graph."""
    forward, backward = ATTENTION_VERSIONS[version]
    want = attention.attention_forward_ref(q, k, v, causal)
    assert_same(forward(q, k, v, causal), want, dtype)
    grads = attention.attention_backward_ref(dout, q, k, v, *want, causal)
    # dq and dk sum ds k and ds q, ds = p (dout.v - dout.out): two dot products that cancel
    # exactly where a query sees one key (out = v), so there both versions' dq is rounding of
    # terms of size |dout| |v| |k| sqrt(D), however small dq is (float32, D = 2: 2e-5 for 0)
    terms = largest(dout) * largest(v) * max(largest(q), largest(k)) * np.sqrt(q.shape[-1])
    assert_same(backward(dout, q, k, v, *want, causal), grads, dtype, terms=(terms, terms))


@st.composite
def attention_cases(draw):
    """(B, H, Tq, Tk, D, causal). Tq < Tk is the KV-cache layout, and without the causal mask
    Tq > Tk is allowed too; Tk crosses the tiled version's key tiles; D is often odd."""
    causal, tk = draw(st.booleans()), draw(st.integers(1, 2 * attention_tiled.KEY_TILE + 3))
    tq = draw(st.one_of(st.just(tk), st.integers(1, tk if causal else tk + 40)))
    B, H, D = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 20))
    return B, H, tq, tk, D, causal


@pytest.mark.parametrize("version", ATTENTION_VERSIONS)
@given(data=st.data(), dtype=dtypes, case=attention_cases())
def test_attention(version, data, dtype, case):
    B, H, Tq, Tk, D, causal = case
    q, dout = arrays(data, (B, H, Tq, D), dtype), arrays(data, (B, H, Tq, D), dtype)
    k, v = arrays(data, (B, H, Tk, D), dtype), arrays(data, (B, H, Tk, D), dtype)
    check_attention(version, dtype, q, k, v, dout, causal)


@pytest.mark.parametrize("version", ATTENTION_VERSIONS)
@pytest.mark.parametrize("tq, tk, d", [
    (1, attention_tiled.KEY_TILE + 1, 5),  # a decoding step whose last tile holds one key
    (attention_tiled.KEY_TILE + 1, attention_tiled.KEY_TILE + 1, 64),  # a second key tile
    (attention_tiled.KEY_BLOCK + 5, 2 * attention_tiled.KEY_BLOCK + 3, 3),  # offset mask
    (attention_tiled.QUERY_BLOCK - 1, attention_tiled.QUERY_BLOCK + 1, 33),
])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_at_block_edges(version, tq, tk, d, causal):
    rng = np.random.default_rng(tq + tk + d)
    q, dout = rng.standard_normal((2, 1, 2, tq, d))  # (B, H, Tq, D) each
    k, v = rng.standard_normal((2, 1, 2, tk, d))  # (B, H, Tk, D) each
    check_attention(version, np.float64, q, k, v, dout, causal)


@pytest.mark.parametrize("version", ATTENTION_VERSIONS)
def test_attention_huge_scores_stay_finite(version):
    """Scores near +-1e4 (exp of them would overflow) give the reference's output and finite
    gradients. (Not equal gradients: at 1e4 a float32 score is exact only to 1e-3, so both
    versions' gradients of the saturated softmax are rounding noise.)"""
    forward, backward = ATTENTION_VERSIONS[version]
    rng = np.random.default_rng(0)
    q, k, v, dout = (rng.standard_normal((1, 2, 70, 16)).astype(np.float32) for _ in range(4))
    q, k = q * 50.0, k * 50.0  # scores q.k / sqrt(16) of order 1e4
    out, lse = forward(q, k, v)
    assert_same((out, lse), attention.attention_forward_ref(q, k, v), np.float32)
    assert all(np.isfinite(g).all() for g in backward(dout, q, k, v, out, lse))


@pytest.mark.parametrize("version", ATTENTION_VERSIONS)
def test_attention_takes_views_of_one_qkv_array(version):
    """As the model calls it: q, k, v are strided views into one (3, B, H, T, D) array; and so
    is dout here, a transposed view."""
    qkv = np.random.default_rng(0).standard_normal((2, 5, 3, 2, 4)).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv  # (B, H, T, D) each, not C-contiguous
    check_attention(version, np.float64, q, k, v, q.swapaxes(0, 1))


@pytest.mark.parametrize("version", ATTENTION_VERSIONS)
@pytest.mark.parametrize("tq", [1, 3])
def test_attention_reads_a_kv_cache(version, tq):
    """As decoding calls it: k, v are the filled part of (B, H, capacity, D) cache buffers."""
    rng = np.random.default_rng(tq)
    k_cache, v_cache = rng.standard_normal((2, 1, 3, 40, 7)).astype(np.float32)  # (B,H,cap,D)
    q, dout = rng.standard_normal((2, 1, 3, tq, 7)).astype(np.float32)  # (B, H, Tq, D) each
    check_attention(version, np.float32, q, k_cache[:, :, :25], v_cache[:, :, :25], dout)


@pytest.mark.parametrize("tq", [1, attention.FEW_QUERIES, attention.FEW_QUERIES + 1])
def test_attention_fast_runs_version_2_for_few_queries(tq, monkeypatch):
    calls, original = [], attention.attention_forward_numba
    monkeypatch.setattr(attention, "attention_forward_numba",
                        lambda *args: calls.append(1) or original(*args))
    rng = np.random.default_rng(tq)
    q, (k, v) = rng.standard_normal((1, 2, tq, 8)), rng.standard_normal((2, 1, 2, 9, 8))
    assert_same(attention.attention_forward_fast(q, k, v),
                attention.attention_forward_ref(q, k, v), np.float64)
    assert len(calls) == (tq <= attention.FEW_QUERIES)


def test_row_kernels_take_transposed_views():
    x = np.random.default_rng(0).standard_normal((7, 5)).T  # (5, 7), not C-contiguous
    check_pair(softmax, "softmax", np.float64, (x,), lambda y: (x, y))
    targets = np.array([0, 6, 3, 1, 2], dtype=np.int32)
    check_pair(cross_entropy, "cross_entropy", np.float64, (x, targets),
               lambda loss, lse: (loss, x, targets, lse))


@pytest.mark.parametrize("fn", [matmul.matmul_numba, matmul.matmul_blas, matmul.matmul_fast])
@given(data=st.data(), dtype=dtypes, m=st.integers(1, 40), k=st.integers(1, 140),
       n=st.integers(1, 40), batch=st.sampled_from([(), (3,), (2, 1)]), b_batched=st.booleans())
def test_matmul(fn, data, dtype, m, k, n, batch, b_batched):
    a = arrays(data, (*batch, m, k), dtype)
    b = arrays(data, (*(batch if b_batched else ()), k, n), dtype)
    assert_same(fn(a, b), matmul.matmul_ref(a, b), dtype)


@given(data=st.data(), dtype=dtypes, m=st.integers(1, matmul.FEW_ROWS), k=st.integers(1, 140),
       n=st.integers(1, 200))
def test_few_rows_matmul(data, dtype, m, k, n):
    a, b = arrays(data, (m, k), dtype), arrays(data, (k, n), dtype)  # k, n: any tile remainder
    assert_same(matmul.matmul_few_rows(a, b), a @ b, dtype)


@pytest.mark.parametrize("rows", range(1, matmul.FEW_ROWS + 2))
def test_matmul_fast_takes_the_few_rows_path_at_decoding_shapes(rows, monkeypatch):
    rng = np.random.default_rng(rows)
    a = rng.standard_normal((1, rows, 337)).astype(np.float32)  # (B, T, K): T new tokens
    b = rng.standard_normal((337, 389)).astype(np.float32)  # K % 4 = 1, N % 16 = 5
    assert b.size >= matmul.FEW_ROWS_MIN_SIZE
    calls, original = [], matmul.matmul_few_rows
    monkeypatch.setattr(matmul, "matmul_few_rows", lambda *args: calls.append(1) or original(*args))
    assert_same(matmul.matmul_fast(a, b), a @ b, np.float32)
    assert len(calls) == (rows <= matmul.FEW_ROWS)  # FEW_ROWS + 1: BLAS


def test_switch_selects_and_falls_back():
    previous = kernels.backend()
    try:
        x = np.array([[1.0, 2.0, 4.0]], dtype=np.float16)  # unfriendly dtype: reference runs
        kernels.use("numba")
        assert kernels.softmax_forward(x).dtype == np.float16
        kernels.use("numpy")
        assert kernels.backend() == "numpy"
        with pytest.raises(ValueError):
            kernels.use("cuda")
    finally:
        kernels.use(previous)


def test_only_friendly_arguments_reach_the_compiled_kernels():
    f32, f64 = np.ones((2, 3), np.float32), np.ones(3, np.float64)
    targets = np.array([0, 1], dtype=np.int64)
    assert kernels._friendly((f32, targets, 1e-5)) and kernels._friendly((f64, np.float32(2)))
    assert not kernels._friendly((f32, f64))  # mixed float dtypes
    assert not kernels._friendly((f32.astype(np.float16),))
    assert not kernels._friendly((np.ones((0, 3), np.float32),))  # empty
    assert not kernels._friendly((targets,))  # no float array at all


def test_environment_chooses_backend():
    code = "import autograd.kernels as k; print(k.backend())"
    env = {"TINYLLM_KERNELS": "numpy", "TINYLLM_THREADS": "1", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numpy", out.stderr


def test_set_threads_sizes_numba_pool():
    before = numba_support.threads()
    try:
        threads.set_threads(1)
        assert numba_support.threads() == 1
    finally:
        threads.set_threads(before)


def test_limited_threads_restores_the_count_even_on_error():
    before = numba_support.threads()
    with pytest.raises(ZeroDivisionError):
        with threads.limited(1):
            assert numba_support.threads() == 1
            1 / 0
    assert numba_support.threads() == before
