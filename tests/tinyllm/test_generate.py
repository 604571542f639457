"""tinyllm/generate.py: greedy is deterministic, top-k restricts, seeds reproduce."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.config import GPTConfig
from tinyllm.generate import generate, sample_next
from tinyllm.model import GPT
from tests.strategies import values

MODEL = GPT(GPTConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=8),
            np.random.default_rng(0))


def run(**kwargs):
    return np.stack(list(generate(MODEL, np.zeros((2, 3), dtype=np.int64), 10, **kwargs)), 1)


def test_greedy_is_deterministic_and_equals_top_1():
    greedy = run(temperature=0)
    assert greedy.shape == (2, 10)  # past block_size too: the context is cropped
    np.testing.assert_array_equal(greedy, run(temperature=0))
    np.testing.assert_array_equal(greedy, run(temperature=1.0, top_k=1,
                                              rng=np.random.default_rng(5)))


def test_seeded_sampling_reproduces():
    a = run(rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, run(rng=np.random.default_rng(3)))


@given(data=st.data(), k=st.integers(1, 8))
def test_top_k_only_draws_among_the_k_largest(data, k):
    logits = data.draw(values((4, 8), -3, 3))
    allowed = np.argsort(logits, axis=-1)[:, -k:]
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = sample_next(logits, 1.0, k, rng)
        assert all(d in row for d, row in zip(drawn, allowed))
