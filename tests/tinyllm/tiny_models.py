"""Tiny GPTs for the inference tests (test_kv_cache, test_generate, test_speculative).

GPT-2's initialisation makes nearly uniform next-token distributions (logits of about 0.1),
which would let sampling bugs hide; scaling every weight sharpens them, so distributions are
peaked, differ from model to model, and greedy choices are far from ties.
"""
import numpy as np

from tinyllm.config import GPTConfig
from tinyllm.model import GPT


def tiny_gpt(pos="learned", seed=0, vocab_size=11, block_size=8, n_layer=2, n_embd=16,
             scale=4.0, **variant):
    """A float32 GPT in eval mode with every parameter multiplied by `scale`."""
    config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=2,
                       n_embd=n_embd, pos=pos, **variant)
    model = GPT(config, np.random.default_rng(seed))
    for p in model.parameters():
        p.data *= scale
    return model.eval()
