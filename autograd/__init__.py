"""autograd: tensors with reverse-mode automatic differentiation, on NumPy.

Read in this order: tensor.py (the graph and backward), ops.py (primitive ops),
kernels/ (array-level forward/backward pairs), functional.py (layer ops), nn.py (modules),
gradcheck.py (how every gradient here is verified).
"""
import os

# OpenBLAS reads this once, when NumPy first loads it, so it is set before anything below
# imports NumPy: idle BLAS workers then sleep at once instead of spinning on the cores our
# Numba kernels need next (kernels/threads.py has the measurements). A program that imports
# NumPy before autograd keeps OpenBLAS's default unless it sets the variable itself.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, no_grad

__all__ = ["Tensor", "no_grad", "gradcheck", "GradcheckError"]
