"""Property-testing tools for ops and layers: hypothesis strategies and one-call checks.

The test suite of this project is built from these, and they are public so you can test your
own ops and layers the same way: draw random shapes (broadcastable pairs too) and values, then
check the forward against a NumPy formula and every gradient against finite differences.

    @given(data=st.data())
    def test_my_layer(data):
        shape = data.draw(shapes(min_dims=2))
        check_layer(lambda dtype, rng: MyLayer(shape[-1], rng=rng, dtype=dtype), shape)

Values come from a NumPy generator seeded by hypothesis rather than element by element: that
is fast, reproducible under derandomised profiles, and keeps inputs away from the places finite
differences cannot see (a relu kink at exactly 0, two equal maxima) with probability 1.

Needs hypothesis (`pip install tinyllm[test]`); `import autograd` itself never imports it.
Left out: strategies for integer inputs (ids, targets): draw them with st.integers/st.lists.
"""
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .gradcheck import gradcheck
from .tensor import Tensor

# forward vs reference in float64: far below any real bug, above summation-order noise
FORWARD_RTOL = FORWARD_ATOL = 1e-10


# --- strategies ---


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=5):
    """Array shapes such as (3,), (2, 1, 4)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_pairs(max_dims=3, max_side=4):
    """Two shapes NumPy can broadcast together, e.g. ((3, 1), (2, 1, 4))."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_dims, max_side=max_side
    ).map(lambda r: r.input_shapes)


def seeds():
    """Seeds for np.random.default_rng, so hypothesis can shrink and replay a random draw."""
    return st.integers(0, 2**32 - 1)


def values(shape, low=-2.0, high=2.0, dtype=np.float64):
    """An array of `shape`, uniform in [low, high): well-conditioned for finite differences."""
    return seeds().map(lambda s: np.random.default_rng(s).uniform(low, high, shape).astype(dtype))


def axes(ndim):
    """A reduction's `axis` argument: None, one (possibly negative) axis, or a tuple of axes."""
    single = st.integers(-ndim, ndim - 1) if ndim else st.nothing()
    return st.none() | single | hnp.valid_tuple_axes(ndim, min_size=1)


def jit_settings(**changes):
    """Hypothesis settings for tests that call Numba-compiled code, as a decorator or a profile.

    No deadline and no too_slow health check: the first call of a kernel compiles it, which
    takes seconds. Everything else comes from the profile loaded now, then from `changes`.
    >>> jit_settings(max_examples=10).deadline is None
    True

    Use it as `@jit_settings()` on a test, or `settings.register_profile("jit", jit_settings())`.
    """
    return settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], **changes)


# --- checks ---


def check_gradients(fn, *inputs, reference=None, **gradcheck_options):
    """fn's gradients w.r.t. its inputs pass gradcheck, and (given) its forward equals
    reference(*inputs) on the plain arrays. Returns True or raises.

    inputs are arrays (floating ones are checked in float64) or Tensors, as for gradcheck.
    >>> check_gradients(lambda a, b: a * b, np.ones((2, 3)), np.arange(3.0),
    ...                 reference=np.multiply)
    True
    """
    if reference is not None:
        out = fn(*[x if isinstance(x, Tensor) else Tensor(x) for x in inputs])
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        np.testing.assert_allclose(out.data, reference(*arrays), rtol=FORWARD_RTOL,
                                   atol=FORWARD_ATOL)
    return gradcheck(fn, list(inputs), **gradcheck_options)


def check_layer(make_layer, *input_shapes, reference=None, seed=0, low=-2.0, high=2.0):
    """Build a layer in float64 and gradcheck it w.r.t. its inputs and every trainable parameter.

    make_layer(dtype=..., rng=...) builds the layer (nn.Linear and friends accept both); the
    inputs, one per shape, are drawn uniform in [low, high) from the same seeded generator.
    reference(layer, *inputs), if given, is the expected forward output as an array.
    Returns True or raises (GradcheckError names the failing parameter).
    >>> from autograd.nn import Linear
    >>> check_layer(lambda dtype, rng: Linear(3, 2, rng=rng, dtype=dtype), (4, 3),
    ...             reference=lambda layer, x: x @ layer.weight.data + layer.bias.data)
    True
    """
    rng = np.random.default_rng(seed)
    layer = make_layer(dtype=np.float64, rng=rng)
    inputs = [rng.uniform(low, high, shape) for shape in input_shapes]  # float64
    if reference is not None:
        out = layer(*[Tensor(x) for x in inputs]).data
        np.testing.assert_allclose(out, reference(layer, *inputs), rtol=FORWARD_RTOL,
                                   atol=FORWARD_ATOL)
    return gradcheck(layer, inputs, module=layer)
