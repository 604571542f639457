"""Fixtures for the command tests: a tiny checkpoint (the text file is in ../conftest.py)."""
import dataclasses

import numpy as np
import pytest

from tinyllm.checkpoint import save_checkpoint
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.tokenizer import CharTokenizer


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """Write a random tiny char model over 'abcdefgh \\n' to NAME.npz; returns its path."""
    tokenizer = CharTokenizer.from_text("abcdefgh \n")

    def write(name="model", seed=0, n_layer=1):
        config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=n_layer,
                           n_head=2, n_embd=16)
        path = tmp_path / f"{name}.npz"
        save_checkpoint(path, GPT(config, np.random.default_rng(seed)).state_dict(), {},
                        {"model_config": dataclasses.asdict(config)}, tokenizer)
        return path
    return write
