"""Cross-entropy fused with log-softmax, forward beside backward.

loss = mean over kept rows n of  -log softmax(logits_n)[t_n]  =  logsumexp(logits_n) - logits_n[t_n]

Fusing the two means the forward keeps only one number per row (the logsumexp) and never holds
a one-hot matrix: the backward rebuilds softmax from the logits and subtracts 1 at the target.
Rows whose target equals `ignore_index` add nothing to the loss or the gradient; if every row is
ignored the loss is 0 (not PyTorch's 0/0 = nan), so a fully masked batch cannot poison training.

Versions:
  1. `*_ref`: vectorised NumPy, the specification.

Shapes: N rows (B*T positions), V classes (the vocabulary).
"""
import numpy as np

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
