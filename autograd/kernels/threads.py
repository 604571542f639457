"""One thread count for both pools that do our arithmetic: Numba's and BLAS's.

A training step alternates Numba kernels (softmax, layer norm, attention...) with BLAS matmuls.
Each library keeps its own pool of worker threads, sized to the core count by default, and each
pool's idle workers spin for a while after a call, waiting for the next one. On 2 cores that
means the next call of the *other* library starts with its threads fighting spinning ones; we
measured a mixed softmax/matmul loop running 16x slower that way. So a program that trains
calls `autograd.kernels.tune_process()` first thing (the `tinyllm` command does), which:

  * sizes both pools to one count with `set_threads(n)` (also usable alone, at any time);
  * tells Numba's OpenMP pool to spin only briefly when idle, then sleep (OMP_WAIT_POLICY=
    PASSIVE, GOMP_SPINCOUNT=10000: ~0.1 ms in GNU OpenMP; each unless the user set it).
    A training step's kernels no longer use that pool (they run on run_workers' threads);
    decoding's do, many small parallel loops back to back, and on our VM waking a sleeping
    thread costs ~100 us. GPT-2-shaped int8 decoding, 7 alternating pairs of runs: 65.8-72.6
    tok/s without the spin, 72.0-76.6 with it; the cpu preset's training step: no change.
    OpenMP reads both once, when Numba first starts its pool, which the first parallel
    kernel or `set_threads` does: so tune the process before running any kernel;
  * likewise OpenBLAS's workers: OPENBLAS_THREAD_TIMEOUT=4 lets them spin 2^4 cycles, not the
    default 2^28 (~0.1 s), after a matmul. OpenBLAS reads it once, when NumPy loads it, and
    importing autograd loads NumPy: so the program's entry point sets it before its first
    `import numpy`, and tune_process only warns when it finds it missing. Measured on the
    shakespeare-char-cpu training step: 35-46 ms with the default, 30-36 ms with it
    (alternating runs).

Importing autograd does none of this: a library must not retune the process it is imported
into, whose other code may want its own pools.

BLAS reads its thread count from the environment only when it is first loaded, which NumPy has
already done by the time this module runs, so we call OpenBLAS's own setter through ctypes,
finding the library NumPy loaded in the process's memory map (/proc/self/maps, Linux only).
What it leaves out: other BLAS builds (MKL, Accelerate) and other OSes, where BLAS keeps the
count its own environment variables gave it (OPENBLAS_NUM_THREADS, MKL_NUM_THREADS).
"""
import contextlib
import ctypes
import functools
import os
import warnings

from . import numba_support

# Read by each library once, as it starts its workers: idle workers then sleep at once, or
# (Numba's OpenMP pool) after a spin of ~0.1 ms.
SLEEP_WHEN_IDLE = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000",
                   "OPENBLAS_THREAD_TIMEOUT": "4"}

# OpenBLAS's functions under the names its builds export (NumPy's wheels rename the symbols).
_OPENBLAS_NAMES = ("scipy_openblas_{}64_", "scipy_openblas_{}", "openblas_{}64_", "openblas_{}")


def cores():
    """The number of cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)  # NumPy loaded its BLAS at import: the answer cannot change
def _openblas_libraries():
    """Every OpenBLAS library this process has loaded, as ctypes handles."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    return [ctypes.CDLL(path) for path in sorted(paths)]  # already loaded: just the handles


def _openblas_functions(name):
    """OpenBLAS's function `name` (say "set_num_threads") from every library that has it."""
    spellings = [pattern.format(name) for pattern in _OPENBLAS_NAMES]
    found = []
    for lib in _openblas_libraries():
        found += [getattr(lib, s) for s in spellings if hasattr(lib, s)][:1]
    return found


def sleep_when_idle():
    """Set SLEEP_WHEN_IDLE's variables, keeping any the user set; warn if OpenBLAS has already
    started without its own, since this process's BLAS workers will then spin after each call."""
    blas_too_late = bool(_openblas_libraries()) and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
    for name, value in SLEEP_WHEN_IDLE.items():
        os.environ.setdefault(name, value)
    if blas_too_late:
        warnings.warn("OpenBLAS was loaded before OPENBLAS_THREAD_TIMEOUT was set, so its idle "
                      "workers spin for ~0.1 s after each matmul: set OPENBLAS_THREAD_TIMEOUT=4 "
                      "before the program's first `import numpy`", stacklevel=3)


def set_threads(n):
    """Use n threads in Numba's parallel loops and in BLAS. Returns the BLAS libraries set."""
    numba_support.set_threads(n)
    setters = _openblas_functions("set_num_threads")
    for setter in setters:
        setter(ctypes.c_int(n))
    return len(setters)


@contextlib.contextmanager
def limited(n):
    """Run the block with at most n threads in both pools, then restore the count.

    For work too small to split: a decoding step of a small model runs ~20 kernels and matmuls
    of a few hundred numbers each, and waking a second thread for each costs more than it
    saves (`benchmarks/generate.py`: a draft step of the cpu preset's model, 0.34-0.51 ms on
    2 threads across runs, 0.27 ms on 1).
    """
    before = numba_support.threads()
    set_threads(min(n, before))
    try:
        yield
    finally:
        set_threads(before)
