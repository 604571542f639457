"""tinyllm/positions.py: the sinusoidal table's formula and RoPE's relative-position property."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from autograd import Tensor, functional as F
from tinyllm.positions import rope_tables, sinusoidal_table


def test_sinusoidal_table_formula():
    table = sinusoidal_table(10, 6, dtype=np.float64)
    p, i = 7, 1
    assert table.shape == (10, 6)
    np.testing.assert_allclose(table[p, 2 * i], np.sin(p / 10000 ** (2 * i / 6)))
    np.testing.assert_allclose(table[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 6)))
    assert sinusoidal_table(4, 5).shape == (4, 5)  # odd widths too


@given(shift=st.integers(0, 20), seed=st.integers(0, 1000))
def test_rope_dot_products_depend_only_on_distance(shift, seed):
    cos, sin = rope_tables(40, 8, dtype=np.float64)
    q, k = np.random.default_rng(seed).standard_normal((2, 1, 8))

    def score(i, j):  # rotated q at position i against rotated k at position j
        qi = F.rotary(Tensor(q), cos[i:i + 1], sin[i:i + 1]).data
        kj = F.rotary(Tensor(k), cos[j:j + 1], sin[j:j + 1]).data
        return float((qi * kj).sum())

    np.testing.assert_allclose(score(3 + shift, 1 + shift), score(3, 1), atol=1e-12)
