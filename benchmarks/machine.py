"""The machine a benchmark ran on: CPU model, core count, and a measured fp32 GEMM peak.

A throughput means little without the machine's own speed limit beside it, so benchmarks print
the best GFLOP/s of one large float32 matrix product (2 n^3 floating-point operations for two
n x n matrices) under the thread count they measure with: header() gives both, a line to print
first and a dict for the JSON result. Imports only NumPy: a worker of another library's
environment can use it too.
"""
import os
import platform
import time

import numpy as np


def cpu_model():
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gemm_gflops(matmul=np.matmul, n=1024, repeats=5):
    """Best GFLOP/s of matmul(a, b) over n x n float32 matrices (NumPy's BLAS by default; a
    worker may pass its own library's product of the same NumPy arrays)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    matmul(a, b)  # warm-up: thread pools start, pages are touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def describe():
    """{cpu, cores, python, numpy} of this machine, for a benchmark's report."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__}


def header(threads):
    """(line, facts) about this machine: describe() plus the GEMM peak of NumPy's BLAS, measured
    now. `threads` is the BLAS thread count the benchmark has just set; measure after setting
    it. A report prints the line first and keeps the facts under "machine" in its JSON."""
    facts = dict(describe(), threads=threads, gemm_gflops=round(gemm_gflops(), 1))
    line = (f"{facts['cpu']}, {facts['cores']} cores, GEMM peak {facts['gemm_gflops']:.0f} "
            f"GFLOP/s (float32 1024^3, NumPy's BLAS, {threads} threads)")
    return line, facts
