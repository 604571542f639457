"""Hypothesis strategies shared by the suites: shapes, broadcastable pairs, well-conditioned values.

Values come from a NumPy generator seeded by hypothesis rather than element by element: that is
fast, reproducible under the derandomised `ci` profile, and keeps inputs away from the places
finite differences cannot see (a relu kink at exactly 0, two equal maxima) with probability 1.
"""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=5):
    """Array shapes such as (3,), (2, 1, 4)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_pairs(max_dims=3, max_side=4):
    """Two shapes NumPy can broadcast together, e.g. ((3, 1), (2, 1, 4))."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_dims, max_side=max_side
    ).map(lambda r: r.input_shapes)


def values(shape, low=-2.0, high=2.0, dtype=np.float64):
    """An array of `shape`, uniform in [low, high)."""
    seeds = st.integers(0, 2**32 - 1)
    return seeds.map(lambda s: np.random.default_rng(s).uniform(low, high, shape).astype(dtype))


def axes(ndim):
    """A reduction's `axis` argument: None, one (possibly negative) axis, or a tuple of axes."""
    single = st.integers(-ndim, ndim - 1) if ndim else st.nothing()
    return st.none() | single | hnp.valid_tuple_axes(ndim, min_size=1)
