"""The kernel switch: the single place that decides which implementation of a heavy op runs.

Each file here holds one op's array-level kernels (plain NumPy arrays in and out, no Tensor), the
readable NumPy reference first. `autograd.functional` calls only the names exported below, so
choosing a backend with `use(...)` or the TINYLLM_KERNELS environment variable changes every op
at once and nothing else.
"""
import os

from . import attention, cross_entropy, gelu, layer_norm, matmul, softmax

BACKENDS = ("numpy",)
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


def _dispatch(ref):
    """A function that runs `ref` (the only backend so far) under the kernel's plain name."""

    def kernel(*args, **kwargs):
        return ref(*args, **kwargs)

    kernel.__name__ = ref.__name__.removesuffix("_ref")
    kernel.__doc__ = ref.__doc__
    return kernel


matmul_forward = _dispatch(matmul.matmul_ref)
softmax_forward = _dispatch(softmax.softmax_forward_ref)
softmax_backward = _dispatch(softmax.softmax_backward_ref)
log_softmax_forward = _dispatch(softmax.log_softmax_forward_ref)
log_softmax_backward = _dispatch(softmax.log_softmax_backward_ref)
cross_entropy_forward = _dispatch(cross_entropy.cross_entropy_forward_ref)
cross_entropy_backward = _dispatch(cross_entropy.cross_entropy_backward_ref)
layer_norm_forward = _dispatch(layer_norm.layer_norm_forward_ref)
layer_norm_backward = _dispatch(layer_norm.layer_norm_backward_ref)
rms_norm_forward = _dispatch(layer_norm.rms_norm_forward_ref)
rms_norm_backward = _dispatch(layer_norm.rms_norm_backward_ref)
gelu_forward = _dispatch(gelu.gelu_forward_ref)
gelu_backward = _dispatch(gelu.gelu_backward_ref)
attention_forward = _dispatch(attention.attention_forward_ref)
attention_backward = _dispatch(attention.attention_backward_ref)

use(os.environ.get("TINYLLM_KERNELS", "numpy"))
