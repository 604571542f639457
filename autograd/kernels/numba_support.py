"""What every Numba kernel here shares: the import of Numba itself, the compiler flags, a
vectorisable max, row views, the thread-pool size and workers on Python threads. (The
vectorisable exp they share has its own chapter, fast_exp.py.) tinyllm's fast paths
(tokenizer, MinHash, LSH, decoding) import Numba from here too, so the project imports it in
one place.

Numba is a hard dependency: there is no stand-in for it, so nothing here is untested.

`cache=True` stores each compiled kernel in __pycache__ beside its source, keyed on that source
file's timestamp only. So after editing a helper in one file (say fast_exp.exp), kernels in
other files that inline it keep their stale machine code: delete autograd/kernels/__pycache__/
*.nbi and *.nbc, or set NUMBA_CACHE_DIR to a fresh folder.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from llvmlite import ir
from numba import config, get_num_threads, njit, prange, set_num_threads, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.typed import Dict

# what kernels and tinyllm's fast paths import from here, besides the helpers below
__all__ = ["Dict", "FASTMATH", "fmax", "njit", "prange", "rows", "run_workers", "set_threads",
           "share", "threads", "types", "workers_for"]
# Every kernel is compiled with these LLVM fast-math flags. "reassoc" lets LLVM reorder sums
# (that is what allows it to vectorise a reduction like sum(x)); "contract" allows fused
# multiply-add. We leave out "nnan"/"ninf": the kernels must behave on extreme logits.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@intrinsic
def fmax(typingctx, a, b):
    """max(a, b) of two floats of one type, as LLVM's maxnum.

    Python's max() compiles to a compare and a branch that also takes care of nan, and
    LLVM will not vectorise a running max made of those; maxnum (which ignores a nan
    argument) it will: measured 1.7x faster over the rows of a (16384, 384) array.
    """
    name = "llvm.maxnum.f64" if a == types.float64 else "llvm.maxnum.f32"

    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t]), name)
        return builder.call(fn, args)

    return a(a, b), codegen


def rows(x):
    """A C-contiguous 2-D view (or copy) of x with the last axis kept. (..., V) -> (N, V)."""
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def set_threads(n):
    """Size Numba's thread pool (at most the pool it started with, NUMBA_NUM_THREADS)."""
    set_num_threads(max(1, min(n, config.NUMBA_NUM_THREADS)))  # NUMBA_NUM_THREADS at import


def threads():
    """Threads Numba's parallel loops use now."""
    return get_num_threads()


# Threads of our own, for run_workers: made on first use, as many as Numba's pool less one (the
# calling thread is a worker too).
_pool = None


def _forget_pool():
    """In a child made by fork, which inherits the pool object but none of its threads (only
    the forking thread is copied): work submitted there would wait forever, so start afresh."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


# Below this many elements an elementwise or row-wise kernel runs on the calling thread alone:
# a second worker starts ~100 us late (run_workers), more than the half it would take away.
# Layer norm's forward at the cpu preset's (768, 128): 78-82 us on one worker, 136-150 on two.
PARALLEL_MIN = 1 << 18


def workers_for(size):
    """How many workers (run_workers' n) a kernel over `size` elements gets: all threads, or
    one below PARALLEL_MIN."""
    return threads() if size >= PARALLEL_MIN else 1


@njit(cache=True, inline="always")
def share(n, worker, workers):
    """Worker `worker`'s contiguous share [lo, hi) of n items, when `workers` split them.

    A worker loops over its share of an array through the views x[lo:hi], from 0: a loop over
    range(lo, hi) indexing x[i] directly leaves LLVM unsure that i >= 0, so every access keeps
    NumPy's negative-index wraparound (GELU of 2^20 float32 on one thread: 1,160 us that way,
    770 us through views).
    """
    return worker * n // workers, (worker + 1) * n // workers


def run_workers(worker, n, *args):
    """worker(*args, w, n) for w = 0 .. n-1 at once: w = 0 on this thread, the others on threads
    of our own; returns when all are done (an exception in one is raised here).

    Numba's `parallel=True` does the same with `prange`, but costs compile time on a cold
    start: attention's forward, a prange over its workers, took 13.15 s to compile, of which
    its callees 8.8 s and the parallel function itself 4.35 s (Numba's compile events). Every
    kernel of a training step now runs its workers here: each of its forward and backward
    compiles ~5 s faster than with prange. The price is the start: a second worker begins
    ~100 us later here (a thread to wake, the GIL to pass), against 5-80 us for prange's, hence
    workers_for. `worker` must be compiled with nogil=True, so that the threads truly run at
    once, and a worker's loops that divide with error_model="numpy": Numba's default checks
    each division for zero, to raise ZeroDivisionError, and that stops LLVM vectorising them.
    """
    global _pool
    if n > 1 and _pool is None:
        _pool = ThreadPoolExecutor(max(1, config.NUMBA_NUM_THREADS - 1), "autograd-worker")
    others = [_pool.submit(worker, *args, w, n) for w in range(1, n)]
    worker(*args, 0, n)
    for other in others:
        other.result()
