"""GELU in its tanh approximation (as GPT-2 uses it), forward beside backward.

gelu(x) = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)   (Hendrycks & Gimpel, 2016)

Versions:
  1. `*_ref`: vectorised NumPy, the specification.

Shapes: any; the op is elementwise.
"""
import math

import numpy as np

# Python floats, not NumPy float64 scalars: under NumPy 2's promotion rules a float64 scalar
# would silently turn float32 arrays into float64 ones.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_COEF = 0.044715

# --- reference ---


def gelu_forward_ref(x):
    """Elementwise tanh-GELU. x (...) -> out (...).

    >>> gelu_forward_ref(np.array([-10.0, 0.0, 10.0]))  # -> [-0.0, 0.0, 10.0]
    """
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x**3)
    return 0.5 * x * (1.0 + np.tanh(u))


def gelu_backward_ref(dout, x):
    """dx for out = gelu(x). dout, x (...) -> dx (...)."""
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_COEF * x**3))
    # product rule on 0.5 x (1 + t), with dt/dx = (1 - t^2) du/dx, du/dx = sqrt(2/pi)(1 + 3c x^2)
    dudx = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dudx)
