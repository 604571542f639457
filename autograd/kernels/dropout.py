"""Inverted dropout: the random mask, and its application, forward beside backward.

out = x keep / (1 - p), where keep is 1 with probability 1 - p and 0 otherwise, so E[out] = x
and evaluation needs no rescaling. Each output depends on its own input only, with
d out / d x = keep / (1 - p): the backward applies the very same map to dout, and one kernel
serves both directions, given the same mask.

The mask is drawn as 32 random bits per element straight from the generator's bit stream
(`random_bits`), and element i is kept when bits[i] >= threshold = round(p 2^32): with
probability 1 - threshold / 2^32, which is 1 - p to within 2^-33. The bits are kept for the
backward (4 bytes per element, as a float32 mask would be). Why not `rng.random(shape) >= p`:
at one of shakespeare-char's activations, (64, 256, 384), drawing float64 uniforms, comparing,
scaling and casting took 51 ms, and a step calls dropout 13 times; the raw bits take 7 ms
(random_raw hands out the generator's 64-bit words as they come, no conversion to float), the
compiled pass a few more.

Versions:
  1. `dropout_forward_ref(x, bits, threshold, scale)`: NumPy, the specification.
  2. `dropout_forward_numba`: one pass over the flat array, shared among workers
     (`run_workers`).
`dropout_backward_*` are the same functions under the name the backward calls them by.

Shapes: any; the op is elementwise, bits has x's shape.
"""
import numpy as np

from .numba_support import FASTMATH, njit, run_workers, share, workers_for

BITS = 32  # random bits per element


def random_bits(shape, rng):
    """Uniform random uint32 of `shape` from rng (np.random.Generator): its next raw 64-bit
    words, each split in two. Reproducible: the same generator state gives the same bits.

    >>> random_bits((2, 3), np.random.default_rng(0)).dtype
    dtype('uint32')
    """
    n = int(np.prod(shape))
    words = rng.bit_generator.random_raw((n + 1) // 2)  # (ceil(n/2),) uint64
    return words.view(np.uint32)[:n].reshape(shape)  # (...) each word's two halves


def keep_threshold(p):
    """The uint32 t with P(bits >= t) = 1 - t / 2^32 closest to 1 - p, for p in [0, 1): the
    largest t, 2^32 - 1, keeps one element in 2^32 rather than none (p is below 1).

    >>> int(keep_threshold(0.0)), int(keep_threshold(0.25)), int(keep_threshold(0.5))
    (0, 1073741824, 2147483648)
    """
    return np.uint32(min(round(p * 2**BITS), 2**BITS - 1))


# --- reference ---


def dropout_forward_ref(x, bits, threshold, scale):
    """x where bits >= threshold, times scale (1 / (1 - p)); 0 elsewhere. -> (...) x's dtype.

    >>> x, bits = np.array([1.0, 2.0, 3.0]), np.array([5, 1, 9], np.uint32)
    >>> dropout_forward_ref(x, bits, np.uint32(4), 2.0)   # the middle one dropped
    array([2., 0., 6.])
    """
    return np.where(bits >= threshold, x * x.dtype.type(scale), x.dtype.type(0))


dropout_backward_ref = dropout_forward_ref  # dx = dout keep / (1 - p): the same map on dout


# --- numba ---


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _dropout_flat(x, bits, threshold, scale, out, worker, workers):
    """x, bits (n,) -> out (n,), written in place for the elements in worker `worker`'s share."""
    s, zero = x.dtype.type(scale), x.dtype.type(0)  # float32 stays float32 (16 lanes)
    lo, hi = share(x.shape[0], worker, workers)
    x, bits, out = x[lo:hi], bits[lo:hi], out[lo:hi]  # its share, as views (see share)
    for i in range(x.shape[0]):
        out[i] = x[i] * s if bits[i] >= threshold else zero  # a select, no branch


def dropout_forward_numba(x, bits, threshold, scale):
    """Same contract as dropout_forward_ref."""
    x1 = np.ascontiguousarray(x).ravel()  # (n,)
    out = np.empty_like(x1)  # (n,)
    run_workers(_dropout_flat, workers_for(x1.size), x1, np.ascontiguousarray(bits).ravel(),
                threshold, scale, out)
    return out.reshape(x.shape)


dropout_backward_numba = dropout_forward_numba  # as the reference
