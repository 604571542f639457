"""Training examples from a stream of token ids: random windows, targets shifted by one.

A window of T+1 consecutive tokens gives T examples at once: the model reads x = w[:T] and at
every position t must predict y[t] = w[t+1]. Windows start at random offsets, so an epoch is a
statistical notion here, as in nanoGPT. `data` can be any 1-D integer array, including an
np.memmap of a token file larger than memory: only the B windows are read.

Shapes: B batch, T block size.
"""
import numpy as np


def get_batch(data, batch_size, block_size, rng):
    """x, y: (B, T) int64 windows of `data` and the same windows shifted by one.

    >>> x, y = get_batch(np.arange(100), 2, 4, np.random.default_rng(0))
    >>> x.shape, (y - x).tolist()   # y is x one token later
    ((2, 4), [[1, 1, 1, 1], [1, 1, 1, 1]])
    """
    if len(data) <= block_size:
        raise ValueError(f"{len(data)} tokens cannot fill a window of block_size {block_size}+1")
    starts = rng.integers(0, len(data) - block_size, batch_size)  # (B,)
    windows = np.asarray(data[starts[:, None] + np.arange(block_size + 1)], dtype=np.int64)
    return windows[:, :-1], windows[:, 1:]  # (B, T) each


def split_train_val(tokens, val_fraction):
    """The first (1 - val_fraction) of the tokens to train on, the rest to validate."""
    n = int(len(tokens) * (1.0 - val_fraction))
    return tokens[:n], tokens[n:]
