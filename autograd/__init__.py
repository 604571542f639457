"""autograd: tensors with reverse-mode automatic differentiation, on NumPy.

Read in this order: tensor.py (the graph and backward), ops.py (primitive ops),
kernels/ (array-level forward/backward pairs), functional.py (layer ops), nn.py (modules),
gradcheck.py (how every gradient here is verified).
"""
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, no_grad

__all__ = ["Tensor", "no_grad", "gradcheck", "GradcheckError"]
