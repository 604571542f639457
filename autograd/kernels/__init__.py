"""The kernel switch: the single place that decides which implementation of a heavy op runs.

Each file here holds one op's array-level kernels (plain NumPy arrays in and out, no Tensor), the
readable NumPy reference first and the Numba version after it. `autograd.functional` calls only
the names exported below, so choosing a backend changes every op at once and nothing else:

    TINYLLM_KERNELS=numpy python train.py      # or, in code: autograd.kernels.use("numpy")

"numba" is the default when Numba imports. Even then a call falls back to the reference (as
llm.c falls back to its naive matmul) when its arrays are unfriendly to the compiled loops: not
float32/float64, mixed float dtypes, or empty. Matmul is mostly BLAS under both backends:
"numba" uses matmul_fast, which folds (B, T, C) @ (C, N) into one GEMM, because the tiled Numba
matmul measured 5x slower than BLAS at training shapes (matmul.py, benchmarks/kernels.py); only
a few rows against a large matrix (decoding a handful of tokens) take a Numba loop there.

TINYLLM_THREADS (default: all cores) sizes Numba's and BLAS's thread pools together; see
threads.py for why they must not both claim every core. Importing this package also tells
malloc to keep freed memory for the next step's arrays (malloc.py: fewer page faults), unless
TINYLLM_MALLOC=default asks to leave the C library's settings alone.
"""
import os
import warnings

import numpy as np

from . import attention, cross_entropy, gelu, layer_norm, malloc, matmul, softmax, threads
from .numba_support import AVAILABLE as NUMBA_AVAILABLE

BACKENDS = ("numpy", "numba") if NUMBA_AVAILABLE else ("numpy",)
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


def _initial_backend():
    """TINYLLM_KERNELS if set, else "numba" when it imports; a request for an absent Numba
    falls back to "numpy" with a warning rather than failing every `import autograd`."""
    name = os.environ.get("TINYLLM_KERNELS", BACKENDS[-1])
    if name == "numba" and not NUMBA_AVAILABLE:
        warnings.warn("TINYLLM_KERNELS=numba, but Numba is not installed: using numpy")
        return "numpy"
    return name


def set_threads(n):
    """Use n threads for both Numba's parallel loops and BLAS."""
    threads.set_threads(n)


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
    kernel.__doc__ = ref.__doc__
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
attention_forward = _dispatch(attention.attention_forward_ref, attention.attention_forward_numba)
attention_backward = _dispatch(attention.attention_backward_ref, attention.attention_backward_numba)


use(_initial_backend())
threads.set_threads(threads.default_threads())
if os.environ.get("TINYLLM_MALLOC") != "default":
    malloc.keep_freed_memory()
