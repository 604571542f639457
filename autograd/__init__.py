"""autograd: tensors with reverse-mode automatic differentiation, on NumPy.

Read in this order: tensor.py (the graph and backward), ops.py (primitive ops),
kernels/ (array-level forward/backward pairs), functional.py (layer ops), nn.py (modules),
gradcheck.py (how every gradient here is verified), testing.py (hypothesis strategies and
check_layer, for testing your own layers; it needs the `test` extra, and importing autograd
does not import it).
"""
from .gradcheck import GradcheckError, GradcheckInputError, gradcheck
from .tensor import Tensor, no_grad

__all__ = ["Tensor", "no_grad", "gradcheck", "GradcheckError", "GradcheckInputError"]
