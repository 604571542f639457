"""Fixtures shared by the tinyllm tests."""
import numpy as np
import pytest


@pytest.fixture
def text_file(tmp_path):
    """A few kilobytes of text with a small alphabet."""
    words = np.random.default_rng(0).choice(["to be", "or not", "that is", "the question"], 3000)
    path = tmp_path / "text.txt"
    path.write_text(" ".join(words) + "\n")
    return path
