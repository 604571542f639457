"""The kernel switch: the single place that decides which implementation of a heavy op runs.

Each file here holds one op's array-level kernels (plain NumPy arrays in and out, no Tensor), the
readable NumPy reference first and the Numba version after it. `autograd.functional` calls only
the names exported below, so choosing a backend changes every op at once and nothing else:

    AUTOGRAD_KERNELS=numpy python train.py     # or, in code: autograd.kernels.use("numpy")

"numba" is the default when Numba imports. Even then a call falls back to the reference (as
llm.c falls back to its naive matmul) when its arrays are unfriendly to the compiled loops: not
float32/float64, mixed float dtypes, or empty. Matmul is mostly BLAS under both backends:
"numba" uses matmul_fast, which folds (B, T, C) @ (C, N) into one GEMM, because the tiled Numba
matmul measured 5x slower than BLAS at training shapes (matmul.py, benchmarks/kernels.py); only
a few rows against a large matrix (decoding a handful of tokens) take a Numba loop there.

Importing this package changes nothing outside it. Tuning the process for our kernels is one
explicit call, `tune_process()`, made by programs that train or decode: it makes idle BLAS and
OpenMP workers sleep rather than spin, sizes Numba's and BLAS's thread pools together
(AUTOGRAD_THREADS, default all cores; threads.py says why), and tells malloc to keep freed
memory for the next step's arrays (malloc.py: fewer page faults) unless AUTOGRAD_MALLOC=default.
The older names TINYLLM_KERNELS, TINYLLM_THREADS and TINYLLM_MALLOC still work but are
deprecated.
"""
import os
import warnings

import numpy as np

from . import attention, cross_entropy, dropout, gelu, layer_norm, malloc, matmul, softmax, threads
from .threads import cores, sleep_when_idle

BACKENDS = ("numpy", "numba")
_backend = "numpy"


def use(name):
    """Choose the kernel backend for the whole process, e.g. `use("numpy")`."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {BACKENDS}")
    _backend = name


def backend():
    """The name of the backend in use."""
    return _backend


def _setting(name):
    """The environment variable AUTOGRAD_<name>, else its deprecated alias TINYLLM_<name>, else
    None. A FutureWarning, not a DeprecationWarning: it is meant for whoever set the variable."""
    if f"AUTOGRAD_{name}" in os.environ:
        return os.environ[f"AUTOGRAD_{name}"]
    if f"TINYLLM_{name}" in os.environ:
        warnings.warn(f"TINYLLM_{name} is deprecated: set AUTOGRAD_{name} instead",
                      FutureWarning, stacklevel=3)
        return os.environ[f"TINYLLM_{name}"]
    return None


def _initial_backend():
    """AUTOGRAD_KERNELS if set, else "numba"."""
    return _setting("KERNELS") or "numba"


def set_threads(n):
    """Use n threads for both Numba's parallel loops and BLAS."""
    threads.set_threads(n)


def tune_process(threads=None):
    """Tune this whole process for our kernels; call it once, before any kernel runs.

    Idle BLAS and OpenMP workers sleep instead of spinning (threads.sleep_when_idle, which
    warns if OpenBLAS started before OPENBLAS_THREAD_TIMEOUT was set), both thread pools get
    `threads` threads (default: AUTOGRAD_THREADS, else all cores), and malloc keeps freed
    memory for reuse (malloc.keep_freed_memory) unless AUTOGRAD_MALLOC=default.
    """
    sleep_when_idle()  # first: set_threads starts Numba's OpenMP pool, which reads it
    set_threads(_default_threads() if threads is None else threads)
    if _setting("MALLOC") != "default":
        malloc.keep_freed_memory()


def _default_threads():
    """AUTOGRAD_THREADS if set, else the number of cores this process may run on."""
    value = _setting("THREADS")
    if not value:
        return cores()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"AUTOGRAD_THREADS must be a whole number above 0, not {value!r}")
    return int(value)


def _friendly(args):
    """True if the compiled kernels can take these arguments: every array (0-d ones are
    scalars) is non-empty, and the float ones share one dtype, float32 or float64.

    A plain loop, not set and list comprehensions: it runs before every kernel call, and in a
    decoding step of a small model those calls take only a few microseconds each."""
    dtype = None
    for a in args:
        if isinstance(a, np.ndarray) and a.ndim:
            if not a.size:
                return False
            if a.dtype.kind == "f":
                if dtype is None:
                    dtype = a.dtype
                elif a.dtype != dtype:
                    return False
    return dtype is not None and dtype.char in "fd"  # float32, float64


def _dispatch(ref, fast):
    """A function that runs `fast` under the numba backend when the arguments allow, else `ref`."""

    def kernel(*args, **kwargs):
        if _backend == "numba" and _friendly(args):
            return fast(*args, **kwargs)
        return ref(*args, **kwargs)

    kernel.__name__ = ref.__name__.removesuffix("_ref")
    # ref's summary, not its examples: those name ref and run (as doctests) in its own module
    summary = (ref.__doc__ or "").split("\n\n")[0]
    kernel.__doc__ = f"{summary}\n\n{ref.__module__}.{ref.__name__}, or under numba its fast twin."
    return kernel


matmul_forward = _dispatch(matmul.matmul_ref, matmul.matmul_fast)
softmax_forward = _dispatch(softmax.softmax_forward_ref, softmax.softmax_forward_numba)
softmax_backward = _dispatch(softmax.softmax_backward_ref, softmax.softmax_backward_numba)
log_softmax_forward = _dispatch(softmax.log_softmax_forward_ref, softmax.log_softmax_forward_numba)
log_softmax_backward = _dispatch(
    softmax.log_softmax_backward_ref, softmax.log_softmax_backward_numba
)
cross_entropy_forward = _dispatch(
    cross_entropy.cross_entropy_forward_ref, cross_entropy.cross_entropy_forward_numba
)
cross_entropy_backward = _dispatch(
    cross_entropy.cross_entropy_backward_ref, cross_entropy.cross_entropy_backward_numba
)
layer_norm_forward = _dispatch(
    layer_norm.layer_norm_forward_ref, layer_norm.layer_norm_forward_numba
)
layer_norm_backward = _dispatch(
    layer_norm.layer_norm_backward_ref, layer_norm.layer_norm_backward_numba
)
rms_norm_forward = _dispatch(layer_norm.rms_norm_forward_ref, layer_norm.rms_norm_forward_numba)
rms_norm_backward = _dispatch(layer_norm.rms_norm_backward_ref, layer_norm.rms_norm_backward_numba)
gelu_forward = _dispatch(gelu.gelu_forward_ref, gelu.gelu_forward_numba)
gelu_backward = _dispatch(gelu.gelu_backward_ref, gelu.gelu_backward_numba)
dropout_forward = _dispatch(dropout.dropout_forward_ref, dropout.dropout_forward_numba)
dropout_backward = _dispatch(dropout.dropout_backward_ref, dropout.dropout_backward_numba)
attention_forward = _dispatch(attention.attention_forward_ref, attention.attention_forward_fast)
attention_backward = _dispatch(attention.attention_backward_ref, attention.attention_backward_fast)


use(_initial_backend())
