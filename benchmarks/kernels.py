"""Each kernel's Numba version against its NumPy reference, forward and backward, at the shapes
of the two Shakespeare configs, plus attention's time and peak memory as T grows.

    python benchmarks/kernels.py [--repeats 7] [--threads N] [--quick] [--decode]

Shapes: "small" is shakespeare-char-cpu (B*T = 768, C = 128, V = 65, attention B=12 H=4 T=64
D=32), "large" is shakespeare-char (B*T = 16384, C = 384, attention B=64 H=6 T=256 D=64);
GELU runs on the MLP's 4C hidden units. All float32, the models' dtype. Attention's "numba"
column is what the numba backend runs (attention_*_fast: at these shapes the tiled version 3).

Timing: the reference and the Numba version are called in alternating rounds (ref, numba, ref,
...) after one warm-up call each, so drift in machine load hits both alike; each figure is the
median over the rounds. Peak memory is tracemalloc's peak during one forward+backward, above
what was allocated before the call. tracemalloc counts NumPy's arrays and, as this script
checks before relying on it, arrays that Numba-compiled code allocates too (in worker threads
as well). Prints the machine and a table, and writes benchmarks/results/kernels.json.

Decoding's matmuls (also alone, with --decode): a few rows (new tokens) times each of the 24
weight matrices of the shakespeare-char model (42 MB, more than the L3 cache, so every pass
streams them from memory), BLAS against matmul_few_rows; matmul_fast uses the latter for
up to FEW_ROWS rows.
"""
import argparse
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

# before NumPy loads OpenBLAS, as the `tinyllm` command does (autograd/kernels/threads.py)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from machine import header  # noqa: E402  (a sibling script, found via HERE)
from autograd import kernels  # noqa: E402
from autograd.kernels import (  # noqa: E402
    attention, cross_entropy, gelu, layer_norm, matmul, numba_support, softmax,
)

SMALL = dict(N=768, C=128, V=65, attn=(12, 4, 64, 32))
LARGE = dict(N=16384, C=384, V=65, attn=(64, 6, 256, 64))
SWEEP_T = (256, 512, 1024, 2048)
SWEEP_BH = (1, 6)  # batch and heads for the T sweep (D = 64)
RNG = np.random.default_rng(0)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--threads", type=int, default=None,
                        help="default: AUTOGRAD_THREADS, else all cores")
    parser.add_argument("--quick", action="store_true", help="small shapes, T sweep to 512")
    parser.add_argument("--decode", action="store_true", help="only decoding's matmuls")
    parser.add_argument("--out", default="benchmarks/results/kernels.json")
    return parser.parse_args()


def randn(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def alternate(fns, repeats, min_round=0.02):
    """Median seconds per call of each zero-argument function, timed in alternating rounds.

    A round calls a function enough times to last about `min_round` seconds, so sub-millisecond
    kernels are not measured at the clock's and the scheduler's resolution.
    """
    calls = []
    for fn in fns:
        fn()  # warm-up: compiles, or loads the compiled code from the cache
        start = time.perf_counter()
        fn()
        calls.append(max(1, int(min_round / (time.perf_counter() - start))))
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, n, ts in zip(fns, calls, times):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            ts.append((time.perf_counter() - start) / n)
    return [float(np.median(ts)) for ts in times]


def row(kernel, shape, direction, ref, fast, repeats):
    """One table row: the reference and the Numba version of one call, timed together."""
    ref_s, fast_s = alternate([ref, fast], repeats)
    return dict(kernel=kernel, shape=shape, pass_=direction, ref_ms=ref_s * 1e3,
                numba_ms=fast_s * 1e3, speedup=ref_s / fast_s)


def pair_rows(mod, name, shape, fwd_args, bwd_args, repeats, fast="numba"):
    """Forward and backward rows of mod.<name>_{forward,backward}_{ref,<fast>}."""
    get = lambda direction, version: getattr(mod, f"{name}_{direction}_{version}")  # noqa: E731
    fwd = [lambda v=v: get("forward", v)(*fwd_args) for v in ("ref", fast)]
    bwd = [lambda v=v: get("backward", v)(*bwd_args()) for v in ("ref", fast)]
    return [row(name, shape, "forward", *fwd, repeats), row(name, shape, "backward", *bwd, repeats)]


def softmax_rows(N, V, repeats):
    x = randn(N, V, scale=3.0)
    dy = randn(N, V)
    y = softmax.softmax_forward_ref(x)
    return pair_rows(softmax, "softmax", f"({N}, {V})", (x,), lambda: (dy, y), repeats)


def cross_entropy_rows(N, V, repeats):
    logits = randn(N, V, scale=3.0)
    targets = RNG.integers(0, V, N)
    _, lse = cross_entropy.cross_entropy_forward_ref(logits, targets)
    return pair_rows(cross_entropy, "cross_entropy", f"({N}, {V})", (logits, targets),
                     lambda: (np.float32(1.0), logits, targets, lse), repeats)


def layer_norm_rows(N, C, repeats):
    x, dout, w, b = randn(N, C), randn(N, C), randn(C), randn(C)
    _, mean, rstd = layer_norm.layer_norm_forward_ref(x, w, b)
    return pair_rows(layer_norm, "layer_norm", f"({N}, {C})", (x, w, b),
                     lambda: (dout, x, w, mean, rstd), repeats)


def gelu_rows(N, C, repeats):
    x, dout = randn(N, 4 * C, scale=2.0), randn(N, 4 * C)
    return pair_rows(gelu, "gelu", f"({N}, {4 * C})", (x,), lambda: (dout, x), repeats)


def attention_args(B, H, T, D):
    q, k, v, dout = (randn(B, H, T, D) for _ in range(4))
    out, lse = attention.attention_forward_ref(q, k, v)
    return (q, k, v), (dout, q, k, v, out, lse)


def attention_rows(B, H, T, D, repeats):
    """Forward, backward, and the two together: the issue's target is on the sum."""
    fwd_args, bwd_args = attention_args(B, H, T, D)
    rows = pair_rows(attention, "attention", f"({B},{H},{T},{D})", fwd_args,
                     lambda: bwd_args, repeats, fast="fast")  # what the numba backend runs
    both = dict(rows[0], pass_="fwd+bwd", ref_ms=rows[0]["ref_ms"] + rows[1]["ref_ms"],
                numba_ms=rows[0]["numba_ms"] + rows[1]["numba_ms"])
    return rows + [dict(both, speedup=both["ref_ms"] / both["numba_ms"])]


def matmul_rows(shapes, repeats):
    """np.matmul as called (ref), the folded single GEMM (blas), and the textbook Numba loop."""
    rows = []
    for a_shape, b_shape in shapes:
        a, b = randn(*a_shape), randn(*b_shape)
        fns = [lambda f=f: f(a, b) for f in (matmul.matmul_ref, matmul.matmul_blas,
                                             matmul.matmul_numba)]
        ref_s, blas_s, tiled_s = alternate(fns, max(3, repeats // 2))
        rows.append(dict(kernel="matmul", shape=f"{a_shape} @ {b_shape}", pass_="forward",
                         ref_ms=ref_s * 1e3, blas_ms=blas_s * 1e3, numba_ms=tiled_s * 1e3,
                         speedup=ref_s / tiled_s))
    return rows


def decode_matmuls(repeats, row_counts=(1, 2, 3, 4, 6, 8, 12, 16)):
    """Milliseconds for a (M, C) @ W over all 24 weight matrices of the large model, per M."""
    C = LARGE["C"]
    weights = [randn(*shape) for shape in [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * 6]
    rows = []
    for M in row_counts:
        xs = [randn(M, w.shape[0]) for w in weights]
        fns = [lambda f=f: [f(x, w) for x, w in zip(xs, weights)]
               for f in (matmul.matmul_blas, matmul.matmul_few_rows)]
        blas_s, few_s = alternate(fns, repeats)
        rows.append(dict(rows=M, blas_ms=blas_s * 1e3, few_rows_ms=few_s * 1e3,
                         used="few rows" if M <= matmul.FEW_ROWS else "blas"))
    return rows


def print_decode(rows):
    print("decoding's matmuls: M rows @ the 24 weight matrices of shakespeare-char (42 MB)")
    print(f"{'rows':>4} {'blas ms':>8} {'few rows ms':>12}  matmul_fast uses")
    for r in rows:
        print(f"{r['rows']:4d} {r['blas_ms']:8.2f} {r['few_rows_ms']:12.2f}  {r['used']}")


def model_matmuls(N, C, B):
    """The GEMMs of one block at this config, a as (B, T, C) the way the model calls them."""
    T = N // B
    return [((B, T, C), (C, 3 * C)), ((B, T, C), (C, 4 * C)), ((B, T, 4 * C), (4 * C, C))]


def peak_bytes(fn):
    """tracemalloc's peak during fn(), above the memory traced when it started."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


@numba_support.njit(parallel=True)
def _allocate_in_threads(n_tasks, n):
    total = 0.0
    for t in numba_support.prange(n_tasks):
        a = np.ones(n)
        total += a.sum()
    return total


def tracemalloc_sees_numba():
    """Does tracemalloc count arrays allocated inside parallel Numba code? (8 MB each)"""
    _allocate_in_threads(2, 10)
    return peak_bytes(lambda: _allocate_in_threads(2, 1_000_000)) >= 8_000_000


def memory_sweep(ts, repeats):
    """Time and peak memory of attention forward+backward for each T."""
    B, H = SWEEP_BH
    rows = []
    for T in ts:
        fwd_args, bwd_args = attention_args(B, H, T, 64)
        both = {k: (lambda v=v: (getattr(attention, f"attention_forward_{v}")(*fwd_args),
                                 getattr(attention, f"attention_backward_{v}")(*bwd_args)))
                for k, v in (("ref", "ref"), ("numba", "fast"))}
        ref_s, fast_s = alternate([both["ref"], both["numba"]], max(3, repeats // 2))
        rows.append(dict(T=T, shape=f"({B},{H},{T},64)", ref_ms=ref_s * 1e3,
                         numba_ms=fast_s * 1e3, ref_peak_mb=peak_bytes(both["ref"]) / 2**20,
                         numba_peak_mb=peak_bytes(both["numba"]) / 2**20))
    return rows


def all_rows(args):
    configs = [("small", SMALL)] + ([] if args.quick else [("large", LARGE)])
    rows = []
    for label, cfg in configs:
        N, C, V = cfg["N"], cfg["C"], cfg["V"]
        for r in (softmax_rows(N, V, args.repeats) + softmax_rows(N, C, args.repeats)
                  + cross_entropy_rows(N, V, args.repeats) + layer_norm_rows(N, C, args.repeats)
                  + gelu_rows(N, C, args.repeats) + attention_rows(*cfg["attn"], args.repeats)
                  + matmul_rows(model_matmuls(N, C, cfg["attn"][0]), args.repeats)):
            rows.append(dict(r, config=label))
    return rows


def print_tables(rows, sweep):
    print(f"{'config':6} {'kernel':14} {'shape':34} {'pass':9} {'numpy ms':>9} "
          f"{'numba ms':>9} {'speedup':>8} {'blas ms':>8}")
    for r in rows:
        blas = f"{r['blas_ms']:8.2f}" if "blas_ms" in r else ""
        print(f"{r['config']:6} {r['kernel']:14} {r['shape']:34} {r['pass_']:9} "
              f"{r['ref_ms']:9.3f} {r['numba_ms']:9.3f} {r['speedup']:7.2f}x {blas}")
    print(f"\nattention forward+backward, B,H = {SWEEP_BH}, D = 64")
    print(f"{'T':>5} {'numpy ms':>9} {'numba ms':>9} {'numpy peak MB':>14} {'numba peak MB':>14}")
    for r in sweep:
        print(f"{r['T']:5d} {r['ref_ms']:9.1f} {r['numba_ms']:9.1f} {r['ref_peak_mb']:14.1f} "
              f"{r['numba_peak_mb']:14.1f}")
    first = next((r for r in sweep if r["T"] == 512), sweep[0])
    growth = {v: sweep[-1][f"{v}_peak_mb"] / first[f"{v}_peak_mb"] for v in ("ref", "numba")}
    print(f"peak growth T={first['T']} -> {sweep[-1]['T']}: numpy {growth['ref']:.1f}x, "
          f"numba {growth['numba']:.1f}x")


def main():
    args = parse_args()
    kernels.tune_process(args.threads)  # as the `tinyllm` command does
    kernels.use("numba")
    line, machine = header(numba_support.threads())  # GEMM peak under the same thread count
    print(line)
    decode = decode_matmuls(args.repeats)
    if args.decode:
        print_decode(decode)
        return
    sees = tracemalloc_sees_numba()
    rows = all_rows(args)
    sweep = memory_sweep(SWEEP_T[:2] if args.quick else SWEEP_T, args.repeats)
    print_tables(rows, sweep)
    print()
    print_decode(decode)
    load = os.getloadavg()
    print(f"\ntracemalloc counts Numba allocations: {sees}; threads: {numba_support.threads()}; "
          f"load average at the end: {load[0]:.1f}")
    result = dict(command=" ".join(["python"] + sys.argv), repeats=args.repeats,
                  threads=numba_support.threads(), tracemalloc_sees_numba=sees,
                  machine=dict(machine, load_average=load),
                  rows=rows, attention_sweep=sweep, decode_matmuls=decode)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
