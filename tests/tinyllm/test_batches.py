"""tinyllm/data/batches.py: windows and their shifted targets, from arrays and memmaps."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data.batches import get_batch, split_train_val


@given(n=st.integers(2, 200), B=st.integers(1, 5), seed=st.integers(0, 100), data=st.data())
def test_targets_are_the_inputs_shifted_by_one(n, B, seed, data):
    T = data.draw(st.integers(1, n - 1))
    tokens = np.random.default_rng(seed).integers(0, 50, n)
    x, y = get_batch(tokens, B, T, np.random.default_rng(seed))
    assert x.shape == y.shape == (B, T) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y):  # each row is a real window of the data
        window = np.concatenate([row_x, row_y[-1:]])
        assert any((tokens[s:s + T + 1] == window).all() for s in range(n - T))


def test_memmap_source(tmp_path):
    np.arange(1000, dtype=np.uint16).tofile(tmp_path / "t.bin")
    data = np.memmap(tmp_path / "t.bin", dtype=np.uint16, mode="r")
    x, y = get_batch(data, 3, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(y - x, 1)


def test_too_short_data_and_split():
    with pytest.raises(ValueError, match="cannot fill"):
        get_batch(np.arange(4), 1, 4, np.random.default_rng(0))
    train, val = split_train_val(np.arange(10), 0.1)
    assert train.tolist() == list(range(9)) and val.tolist() == [9]
