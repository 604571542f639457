"""Cross-entropy fused with log-softmax, forward beside backward.

loss = mean over kept rows n of  -log softmax(logits_n)[t_n]  =  logsumexp(logits_n) - logits_n[t_n]

Fusing the two means the forward keeps only one number per row (the logsumexp) and never holds
a one-hot matrix: the backward rebuilds softmax from the logits and subtracts 1 at the target.
Rows whose target equals `ignore_index` add nothing to the loss or the gradient; if every row is
ignored the loss is 0 (not PyTorch's 0/0 = nan), so a fully masked batch cannot poison training.

`reduction` (PyTorch's argument) says what to do with the per-row losses: "mean" over the kept
rows (the default, above), "sum", or "none": the (N,) losses themselves, 0 at ignored rows,
which is what a per-sequence log-probability (DPO, fine-tuning's metrics) is summed from.

Versions:
  1. `*_ref`: vectorised NumPy, the specification.
  2. `*_numba`: rows shared among workers (`run_workers`); the forward makes two passes over
     each row (max, then the sum of exp) and stores nothing of size (N, V); the backward
     writes dlogits in one pass.

Shapes: N rows (B*T positions), V classes (the vocabulary).
"""
import numpy as np

from .fast_exp import exp
from .numba_support import FASTMATH, njit, run_workers, share, workers_for
from .softmax import row_logsumexp

REDUCTIONS = ("mean", "sum", "none")

# --- reference ---


def _kept(targets, ignore_index):
    """The mask of rows that count, and the targets with ignored ones made safe to index."""
    keep = targets != ignore_index  # (N,)
    return keep, np.where(keep, targets, 0)


def _check(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(losses, keep, reduction, dtype):
    """The loss asked for from per-row losses (N,) that are already 0 at ignored rows."""
    _check(reduction)
    if reduction == "none":
        return losses.astype(dtype)  # (N,)
    total = losses.sum()
    if reduction == "mean":
        total /= max(int(np.count_nonzero(keep)), 1)
    return np.asarray(total, dtype=dtype)


def _row_scales(dloss, keep, reduction):
    """d loss / d (row n's loss), (N,): dloss / n_kept ("mean"), dloss ("sum") or dloss_n
    ("none") at kept rows, 0 at ignored ones."""
    _check(reduction)
    dloss = np.asarray(dloss, dtype=np.float64)  # () or (N,)
    if reduction == "mean":
        dloss = dloss / max(int(np.count_nonzero(keep)), 1)
    return np.where(keep, dloss, 0.0)  # (N,)


def cross_entropy_forward_ref(logits, targets, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of `targets`. logits (N, V), targets (N,) int -> loss, lse.

    loss has logits' dtype: 0-d for "mean" and "sum", (N,) for "none"; lse (N,) is each row's
    logsumexp, all the backward needs.
    >>> cross_entropy_forward_ref(np.zeros((1, 4)), np.array([2]))[0]  # log 4
    array(1.38629436)
    """
    m = logits.max(axis=-1)  # (N,)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=-1))  # (N,)
    keep, safe = _kept(targets, ignore_index)
    picked = logits[np.arange(len(targets)), safe]  # (N,) the target's logit
    losses = np.where(keep, lse - picked, 0.0)  # (N,)
    return _reduce(losses, keep, reduction, logits.dtype), lse


def cross_entropy_backward_ref(dloss, logits, targets, lse, ignore_index=-100, reduction="mean"):
    """dlogits for the loss above. dloss scalar, or (N,) for "none"; logits (N, V) -> (N, V)."""
    # d(lse_n - logits_n[t_n]) / dlogits_nj = softmax_nj - [j == t_n]
    keep, safe = _kept(targets, ignore_index)
    dlogits = np.exp(logits - lse[:, None])  # (N, V) softmax, rebuilt from the saved lse
    dlogits[np.arange(len(targets)), safe] -= 1.0
    dlogits *= _row_scales(dloss, keep, reduction)[:, None]  # ignored rows -> 0; the mean's 1/n
    return dlogits.astype(logits.dtype, copy=False)


# --- numba ---


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _cross_entropy_rows(logits, targets, ignore_index, lse, losses, worker, workers):
    """logits (N, V), targets (N,) -> lse (N,) and per-row losses (N,), written in place
    for the rows in worker `worker`'s share."""
    lo, hi = share(logits.shape[0], worker, workers)
    logits, targets, lse, losses = logits[lo:hi], targets[lo:hi], lse[lo:hi], losses[lo:hi]
    for n in range(logits.shape[0]):  # its rows, as views (see share)
        # passes 1-2 over the row: max, then sum of exp; the probabilities are never stored
        lse[n] = row_logsumexp(logits[n])
        t = targets[n]
        losses[n] = 0.0 if t == ignore_index else lse[n] - logits[n, t]


def cross_entropy_forward_numba(logits, targets, ignore_index=-100, reduction="mean"):
    """Same contract as cross_entropy_forward_ref. logits (N, V), targets (N,) -> loss, lse."""
    logits, targets = _contiguous(logits, targets, ignore_index)
    lse = np.empty(len(targets), dtype=logits.dtype)  # (N,)
    losses = np.empty(len(targets))  # (N,) float64, summed in a fixed order by _reduce
    run_workers(_cross_entropy_rows, workers_for(logits.size), logits, targets, ignore_index, lse,
                losses)
    return _reduce(losses, targets != ignore_index, reduction, logits.dtype), lse


# loss = reduce_n (lse_n - logits_n[t_n]);  dlogits_nj = scale_n * (softmax_nj - [j == t_n]),
# scale_n = d loss / d loss_n (dloss / n_kept for the mean)
@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _cross_entropy_backward_rows(logits, targets, ignore_index, lse, scales, dlogits, worker,
                                 workers):
    """logits (N, V), targets, lse, scales (N,) -> dlogits (N, V), written in place
    for the rows in worker `worker`'s share."""
    lo, hi = share(logits.shape[0], worker, workers)
    logits, targets, lse, scales, dlogits = (
        logits[lo:hi], targets[lo:hi], lse[lo:hi], scales[lo:hi], dlogits[lo:hi])
    for n in range(logits.shape[0]):  # its rows, as views (see share)
        t = targets[n]
        if t == ignore_index:  # an ignored row took no part in the loss
            dlogits[n, :] = 0.0
            continue
        # in the forward pass lse_n = log sum_j exp(logits_nj),
        # so now softmax_nj = exp(logits_nj - lse_n)
        scale = scales[n]
        for j in range(logits.shape[1]):
            dlogits[n, j] = exp(logits[n, j] - lse[n]) * scale
        dlogits[n, t] -= scale


def cross_entropy_backward_numba(dloss, logits, targets, lse, ignore_index=-100,
                                 reduction="mean"):
    """Same contract as cross_entropy_backward_ref. dloss () or (N,), logits (N, V) -> (N, V)."""
    logits, targets = _contiguous(logits, targets, ignore_index)
    scales = _row_scales(dloss, targets != ignore_index, reduction)  # (N,)
    dlogits = np.empty_like(logits)  # (N, V)
    run_workers(_cross_entropy_backward_rows, workers_for(logits.size), logits, targets,
                ignore_index, lse, scales, dlogits)
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
