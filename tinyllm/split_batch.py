"""A micro-batch in two halves at once: how a training step of a small model uses two cores.

Every kernel of a step splits its work among threads (autograd/kernels: run_workers, BLAS's own
pool), and each split pays to wake the other thread: ~100 us on our 2-core VM, against
kernels of a few hundred us at the `shakespeare-char-cpu` preset's (768, 128) activations. That
step has ~90 such splits: 2 threads made it 1.38x faster than 1 (57.7 -> 41.8 ms), where
PyTorch's one OpenMP pool, whose idle threads spin, made its own 1.69x (56.7 -> 33.6 ms; ad hoc,
our Xeon, `benchmarks/train_step.py --threads 1` and 2). Here the split is made once per
micro-batch instead: its first half goes through the model on this thread and its second half
through a replica on another, each half on one thread throughout, so no kernel waits for a
second thread: 1.64x (57.8 -> 35.2 ms, ad hoc, in one script). The replica is the same
modules holding the same weight arrays (not copies), so every optimizer step reaches both.

    loss = (n0 loss0 + n1 loss1) / (n0 + n1)   n_h: the counted targets of half h
    => dloss_h = n_h / (n0 + n1) dloss, and the weights' gradient sums the halves'

which is the whole batch's mean loss and gradient, summed in another order (so equal to
rounding). The halves' graphs are independent until their gradients meet, so the backward
runs both at once too, then adds the replica's gradients into the model's. A larger model
gains nothing (`shakespeare-char`: its kernels are long enough to split well) and loses nothing
measurable.

Used when the step has exactly two threads (`autograd.kernels.set_threads`): two halves, one
thread each. With more, each half would need its own multi-threaded BLAS calls at the same
time, which we have not measured; the step then keeps splitting each kernel.

Dropout draws the same masks as for the whole batch: a mask is drawn row after row of the
batch (kernels/dropout.py, random_bits: raw 64-bit words in order, two elements each), so each
half's generator steps over the words of the other half's rows (_Rows; the `advance` of
PCG64, NumPy's default generator, which every model here draws from), and the model's
generator ends where the whole batch's draws would have left it. So a run trains alike (to
rounding) whether it splits or not, on any thread count: a condition is that a row's T C
elements fill whole words (T C even); otherwise the batch is not split.
"""
import contextlib
import copy

import numpy as np

from autograd import Tensor, nn
from autograd.kernels import numba_support, threads

# F.cross_entropy's default ignore_index, the one GPT.forward's loss uses: targets equal to it
# are not counted in the mean (fine-tuning's prompt and padding positions)
IGNORED = -100


class SplitBatch:
    """`split(idx, targets)` -> (None, loss): GPT's model(idx, targets) loss, computed as two
    halves of the batch on two threads when the step has two; otherwise model(idx, targets).
    Everything else (config, train(), parameters()...) is the model's own.

    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.model import GPT
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=1, n_embd=8),
    ...             np.random.default_rng(0), dtype=np.float64)
    >>> x, y = np.arange(8).reshape(2, 4), np.arange(1, 9).reshape(2, 4)  # (B, T) each
    >>> loss = SplitBatch(model, split=True)(x, y)[1]  # split whatever the thread count
    >>> bool(np.isclose(loss.item(), model(x, y)[1].item()))
    True
    """

    def __init__(self, model, split=None):
        self.model = model
        self.split = split  # None: when the step has exactly two threads; or always / never
        self._replica, self._dropouts = None, []  # the replica, its (model's, replica's) Dropouts
        self._pairs = []  # (model's parameter, replica's), as made

    def __getattr__(self, name):  # only for names SplitBatch lacks: the model's
        return getattr(self.model, name)

    def __call__(self, idx, targets=None):
        split = numba_support.threads() == 2 if self.split is None else self.split
        B, T = np.shape(idx) if np.ndim(idx) == 2 else (0, 0)  # (0, 0): the model's error
        if targets is None or not split or B < 2 or T * self.model.config.n_embd % 2:
            return self.model(idx, targets)
        cut = B // 2
        halves = [(self.model, idx[:cut], targets[:cut]),  # (model, (B0, T), (B0, T))
                  (self.replica(), idx[cut:], targets[cut:])]
        # BLAS on the calling thread, this thread's kernels too; each half's masks its rows'
        with threads.limited(1), self._masks_by_rows(cut, B):
            losses = _at_once(lambda model, x, y: model(x, y)[1], halves)
        counts = [np.count_nonzero(y != IGNORED) for _, _, y in halves]
        weights = [n / sum(counts) if sum(counts) else 0.0 for n in counts]
        return None, self._joined(losses, weights)

    def replica(self):
        """The model's twin: its modules copied, its weight arrays shared. Made again if the
        model's arrays were replaced since (load_state_dict copies into them: no need then), or
        its parameters changed (LoRA adapters added). One walk of the model's parameters a call
        (~90 us at the cpu preset, under the GIL that the other half waits for)."""
        params = self.model.parameters()
        if len(params) != len(self._pairs) or any(
                p is not mine or p.data is not r.data for p, (mine, r) in zip(params, self._pairs)):
            shared = {id(p.data): p.data for p in params}  # deepcopy's memo: kept, not copied
            self._replica = copy.deepcopy(self.model, shared)
            self._pairs = list(zip(params, self._replica.parameters()))
            self._dropouts = [(m, r) for m, r in zip(self.model.modules(),
                                                     self._replica.modules())
                              if isinstance(m, nn.Dropout)]
        self._replica.train(self.model.training)
        return self._replica

    @contextlib.contextmanager
    def _masks_by_rows(self, cut, B):
        """For the block, the model's dropouts draw the masks of rows [0, cut) of a B-row
        batch and the replica's those of rows [cut, B), each from where the model's generator
        stands now; after it, the model's generators stand where the whole batch leaves them."""
        for mine, theirs in self._dropouts:  # the replica's generators start where ours are
            theirs.rng.bit_generator.state = mine.rng.bit_generator.state
        generators = [(m, m.rng) for pair in self._dropouts for m in pair]
        for mine, theirs in self._dropouts:
            mine.rng, theirs.rng = _Rows(mine.rng, 0, cut, B), _Rows(theirs.rng, cut, B, B)
        try:
            yield
        finally:
            for module, generator in generators:
                module.rng = generator

    def _joined(self, losses, weights):
        """The batch's loss: a node whose parents are the model's weights, and whose backward
        runs each half's backward (both at once) and adds the replica's gradients in."""
        value = sum(w * loss.item() for w, loss in zip(weights, losses))
        pairs = self._pairs  # the replica's, as this call used it

        def backward(dout):
            # loss = sum_h w_h loss_h  =>  dloss_h = w_h dout
            jobs = [(loss, np.asarray(w * dout, dtype=dout.dtype)) for loss, w in
                    zip(losses, weights)]
            with threads.limited(1):
                _at_once(lambda loss, d: loss.backward(d), jobs)
            for p, r in pairs:
                if r.grad is not None:  # the replica's half, into the model's .grad
                    p.accumulate(r.grad)
                    r.grad = None

        return Tensor.from_op(np.asarray(value, dtype=losses[0].dtype),
                              [p for p, _ in pairs if p.requires_grad], backward)


class _Rows:
    """A generator as the dropout of rows [lo, hi) of a B-row batch uses it: where the whole
    batch would draw its words, those of rows lo .. hi-1 are drawn, the others stepped over.
    Only what F.dropout calls (rng.bit_generator.random_raw) is there."""

    def __init__(self, generator, lo, hi, B):
        self.generator, self.lo, self.hi, self.B = generator, lo, hi, B
        self.bit_generator = self  # F.dropout draws through rng.bit_generator

    def random_raw(self, size):
        per_row = size // (self.hi - self.lo)  # T C / 2 words a row (T C is even)
        words = self.generator.bit_generator
        words.advance(self.lo * per_row)  # the rows before ours
        ours = words.random_raw(size)  # ((hi - lo) T C / 2,) uint64
        words.advance((self.B - self.hi) * per_row)  # the rows after
        return ours


def _at_once(fn, jobs):
    """[fn(*job) for job in jobs], each job on its own thread (the first on this one), each
    thread running its kernels alone (Numba's thread count is per thread)."""
    results = [None] * len(jobs)

    def run(w, n):  # worker w of n, as run_workers calls it
        before = numba_support.threads()
        numba_support.set_threads(1)
        try:
            results[w] = fn(*jobs[w])
        finally:
            numba_support.set_threads(before)

    numba_support.run_workers(run, len(jobs))
    return results
