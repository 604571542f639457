"""One thread count for both pools that do our arithmetic: Numba's and BLAS's.

A training step alternates Numba kernels (softmax, layer norm, attention...) with BLAS matmuls.
Each library keeps its own pool of worker threads, sized to the core count by default, and each
pool's idle workers spin for a while after a call, waiting for the next one. On 2 cores that
means the next call of the *other* library starts with its threads fighting spinning ones; we
measured a mixed softmax/matmul loop running 16x slower that way. So:

  * TINYLLM_THREADS (default: the cores this process may use) sets both pool sizes, and
    `set_threads(n)` changes both at run time;
  * Numba's OpenMP pool is told to sleep, not spin, when idle (OMP_WAIT_POLICY=PASSIVE, unless
    the user set it). This must happen before that pool first starts, i.e. at import.
  * So are OpenBLAS's workers: OPENBLAS_THREAD_TIMEOUT=4 lets them spin 2^4 cycles, not the
    default 2^28 (~0.1 s), after a matmul. OpenBLAS reads it once, when NumPy loads it, so
    autograd/__init__.py sets it before importing NumPy. Measured on the shakespeare-char-cpu
    training step: 35-46 ms with the default, 30-36 ms with it (alternating runs).

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

from . import numba_support

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# OpenBLAS's setter under the names its builds export (NumPy's wheels rename the symbols).
_OPENBLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def default_threads():
    """TINYLLM_THREADS if set, else the number of cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return int(os.environ.get("TINYLLM_THREADS") or cores or 1)


@functools.lru_cache(maxsize=1)  # NumPy loaded its BLAS at import: the answer cannot change
def _openblas_setters():
    """Every OpenBLAS thread-count setter in the libraries this process has loaded."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    setters = []
    for path in sorted(paths):
        lib = ctypes.CDLL(path)  # already loaded: this only looks up the handle
        setters += [getattr(lib, name) for name in _OPENBLAS_SETTERS if hasattr(lib, name)][:1]
    return setters


def set_threads(n):
    """Use n threads in Numba's parallel loops and in BLAS. Returns the BLAS libraries set."""
    numba_support.set_threads(n)
    setters = _openblas_setters()
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
