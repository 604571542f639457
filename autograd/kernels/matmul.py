"""Matrix multiplication, the op where nearly all of a transformer's FLOPs go.

Versions:
  1. `matmul_ref`: NumPy's `@`, which hands the work to BLAS.

Shapes: a (..., M, K) @ b (..., K, N) -> (..., M, N), leading axes broadcast.
"""
import numpy as np

# --- reference ---


def matmul_ref(a, b):
    """a (..., M, K), b (..., K, N) -> (..., M, N)."""
    return np.matmul(a, b)
