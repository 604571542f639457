"""How a transformer knows where a token is: the fixed tables behind two position schemes.

Attention itself is blind to order (it sees a set of keys), so position must be injected:
- learned: a trainable (block_size, C) table added to the token embeddings (GPT-2); it lives in
  the model as `transformer.wpe`, so nothing is computed here;
- sinusoidal: the fixed table of "Attention Is All You Need" (Vaswani et al., 2017), added the
  same way: channel pair (2i, 2i+1) holds sin and cos of position / 10000^(2i/C);
- rope: rotary embeddings (Su et al., 2021) rotate queries and keys instead, channel pair
  (j, j + hs/2) by the angle position * 10000^(-2j/hs), so q.k depends only on the distance.
  The rotation is `autograd.functional.rotary`; here are its cos and sin tables.

Shapes: T positions, C channels, hs head size.
"""
import numpy as np


def sinusoidal_table(T, C, dtype=np.float32):
    """(T, C) table: out[p, 2i] = sin(p w_i), out[p, 2i+1] = cos(p w_i), w_i = 10000^(-2i/C)."""
    angles = _angles(T, C)  # (T, ceil(C/2))
    table = np.empty((T, C))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : C // 2])
    return table.astype(dtype)


def rope_tables(T, hs, dtype=np.float32):
    """cos and sin, each (T, hs/2), of the angle position * 10000^(-2j/hs) for j < hs/2."""
    angles = _angles(T, hs)  # (T, hs/2)
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def _angles(T, C):
    """(T, ceil(C/2)) angles p * 10000^(-2i/C): fast rotation in low channels, slow in high."""
    frequencies = 10000.0 ** (-np.arange(0, C, 2) / C)  # (ceil(C/2),)
    return np.arange(T)[:, None] * frequencies[None, :]  # (T, ceil(C/2))
