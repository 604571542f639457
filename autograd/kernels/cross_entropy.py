"""Cross-entropy fused with log-softmax, forward beside backward.

loss = mean over kept rows n of  -log softmax(logits_n)[t_n]  =  logsumexp(logits_n) - logits_n[t_n]

Fusing the two means the forward keeps only one number per row (the logsumexp) and never holds
a one-hot matrix: the backward rebuilds softmax from the logits and subtracts 1 at the target.
Rows whose target equals `ignore_index` add nothing to the loss or the gradient; if every row is
ignored the loss is 0 (not PyTorch's 0/0 = nan), so a fully masked batch cannot poison training.

Versions:
  1. `*_ref`: vectorised NumPy, the specification.
  2. `*_numba`: rows in parallel; the forward makes two passes over each row (max, then the sum
     of exp) and stores nothing of size (N, V); the backward writes dlogits in one pass.

Shapes: N rows (B*T positions), V classes (the vocabulary).
"""
import numpy as np

from .fast_exp import exp
from .numba_support import FASTMATH, njit, prange
from .softmax import row_logsumexp

# --- reference ---


def _kept(targets, ignore_index):
    """The mask of rows that count, the targets with ignored ones made safe to index, the count."""
    keep = targets != ignore_index  # (N,)
    return keep, np.where(keep, targets, 0), max(int(keep.sum()), 1)


def cross_entropy_forward_ref(logits, targets, ignore_index=-100):
    """Mean negative log-likelihood of `targets`. logits (N, V), targets (N,) int -> loss, lse.

    loss is a 0-d array of logits' dtype; lse (N,) is each row's logsumexp, all the backward needs.
    >>> cross_entropy_forward_ref(np.zeros((1, 4)), np.array([2]))[0]  # -> log 4 = 1.386...
    """
    m = logits.max(axis=-1)  # (N,)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=-1))  # (N,)
    keep, safe, n_kept = _kept(targets, ignore_index)
    picked = logits[np.arange(len(targets)), safe]  # (N,) the target's logit
    loss = np.where(keep, lse - picked, 0.0).sum() / n_kept
    return np.asarray(loss, dtype=logits.dtype), lse


def cross_entropy_backward_ref(dloss, logits, targets, lse, ignore_index=-100):
    """dlogits for the mean loss above. dloss scalar, logits (N, V) -> dlogits (N, V)."""
    # d(lse_n - logits_n[t_n]) / dlogits_nj = softmax_nj - [j == t_n]
    keep, safe, n_kept = _kept(targets, ignore_index)
    dlogits = np.exp(logits - lse[:, None])  # (N, V) softmax, rebuilt from the saved lse
    dlogits[np.arange(len(targets)), safe] -= 1.0
    dlogits *= (keep * (dloss / n_kept))[:, None]  # ignored rows -> 0; the mean's 1/n
    return dlogits.astype(logits.dtype, copy=False)


# --- numba ---


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _cross_entropy_rows(logits, targets, ignore_index, lse, losses):
    """logits (N, V), targets (N,) -> lse (N,) and per-row losses (N,), written in place."""
    for n in prange(logits.shape[0]):
        # passes 1-2 over the row: max, then sum of exp; the probabilities are never stored
        lse[n] = row_logsumexp(logits[n])
        t = targets[n]
        losses[n] = 0.0 if t == ignore_index else lse[n] - logits[n, t]


def cross_entropy_forward_numba(logits, targets, ignore_index=-100):
    """Same contract as cross_entropy_forward_ref. logits (N, V), targets (N,) -> loss, lse."""
    logits, targets = _contiguous(logits, targets, ignore_index)
    lse = np.empty(len(targets), dtype=logits.dtype)  # (N,)
    losses = np.empty(len(targets))  # (N,) float64, summed in a fixed order below
    _cross_entropy_rows(logits, targets, ignore_index, lse, losses)
    n_kept = max(int(np.count_nonzero(targets != ignore_index)), 1)
    return np.asarray(losses.sum() / n_kept, dtype=logits.dtype), lse


# loss = mean_n (lse_n - logits_n[t_n]);  dlogits_nj = dloss / n_kept * (softmax_nj - [j == t_n])
@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _cross_entropy_backward_rows(logits, targets, ignore_index, lse, scale, dlogits):
    """logits (N, V), targets, lse (N,) -> dlogits (N, V), written in place."""
    for n in prange(logits.shape[0]):
        t = targets[n]
        if t == ignore_index:  # an ignored row took no part in the loss
            dlogits[n, :] = 0.0
            continue
        # in the forward pass lse_n = log sum_j exp(logits_nj),
        # so now softmax_nj = exp(logits_nj - lse_n)
        for j in range(logits.shape[1]):
            dlogits[n, j] = exp(logits[n, j] - lse[n]) * scale
        dlogits[n, t] -= scale


def cross_entropy_backward_numba(dloss, logits, targets, lse, ignore_index=-100):
    """Same contract as cross_entropy_backward_ref. dloss scalar, logits (N, V) -> (N, V)."""
    logits, targets = _contiguous(logits, targets, ignore_index)
    n_kept = max(int(np.count_nonzero(targets != ignore_index)), 1)
    dlogits = np.empty_like(logits)  # (N, V)
    _cross_entropy_backward_rows(logits, targets, ignore_index, lse, float(dloss) / n_kept, dlogits)
    return dlogits


def _contiguous(logits, targets, ignore_index):
    """C-ordered logits (N, V) and int64 targets (N,), so one compiled version serves all.

    Compiled loops do not bounds-check, so a bad target must fail here, as NumPy would.
    """
    targets = np.ascontiguousarray(targets, dtype=np.int64)  # (N,)
    kept = targets[targets != ignore_index]  # (n_kept,)
    if kept.size and (kept.min() < 0 or kept.max() >= logits.shape[1]):
        raise IndexError(f"cross_entropy: a target is outside [0, {logits.shape[1]})")
    return np.ascontiguousarray(logits), targets
