"""ZeRO stage 1 (Rajbhandari et al., 2020): N ranks split AdamW's moments between them.

Plain data parallelism (distributed.py) keeps N identical copies of everything. AdamW's two
moments are two more copies of the parameters, 8 bytes per float32 parameter, the largest state
a rank holds after the activations. ZeRO-1 cuts the flat parameter vector (FlatLayout, padded to
L' = N S values) into N shards; rank r owns [r S, (r+1) S) and keeps moments there only:

    reduce-scatter the gradients   rank r receives the sum over ranks of its own shard
    clip by the global norm        each rank's sum of squares, added up by an Allreduce
    AdamW on the shard             the same elementwise update, on S values instead of L
    all-gather the parameters      every rank receives every updated shard

A ring Allreduce *is* a reduce-scatter followed by an all-gather, so the traffic is the same as
plain data parallelism's: the memory saving costs no extra bytes on the wire. The update is the
same elementwise arithmetic on the same numbers, so the weights equal plain data parallelism's
(only the clipping norm is summed in another order). A parameter may straddle two shards: AdamW
sees a rank's part of it as a _Piece, 1-D views of that part's values and gradient, grouped under
the parameter's weight decay, so optim.AdamW itself does the update, unchanged.

Checkpoints hold the whole, ordinary AdamW state: state_dict() gathers the moments to rank 0,
which writes them, so a run resumes on any number of ranks, or on one.
Memory per rank: 8 L / N bytes of moments instead of 8 L, plus, like plain data parallelism,
the flat buffer (4 L' bytes) the gradients travel in, and S summed gradient values. Left out:
ZeRO-2 and ZeRO-3, which also shard the gradients and the parameters themselves.

Shapes: L trainable values, S = L' / N values per shard.
"""
import math

import numpy as np

from tinyllm.distributed import DataParallel, FlatLayout
from tinyllm.optim import AdamW, ParamGroup


class Zero1(DataParallel):
    """DataParallel whose optimizer keeps the moments of this rank's shard only."""

    def prepare(self, run, task):
        """Attach this job to `run` and split its optimizer's state: a fresh one, or the whole
        state a checkpoint restored, so a run written on any number of ranks continues here."""
        super().prepare(run, task)
        run.optimizer = ZeroAdamW(run.optimizer, self.comm)

    def sum_gradients(self, optimizer):
        """Reduce-scatter; returns this rank's pieces, holding the summed gradient of its shard."""
        return optimizer.reduce_gradients()

    def clip_grad_norm(self, pieces, max_norm):
        """optim.clip_grad_norm for a gradient that no rank holds whole: each rank adds up the
        squares of its shard and an Allreduce adds the ranks' sums; the same scale then."""
        total = math.sqrt(self.sum(sum(float(np.vdot(p.grad, p.grad)) for p in pieces))[0])
        if total > max_norm:
            for p in pieces:
                p.grad *= max_norm / (total + 1e-6)
        return total


class _Piece:
    """The part [lo, hi) of the flat vector where one parameter meets this rank's shard, as
    AdamW sees a parameter: `data` and `grad`, 1-D views into the shard's buffers."""

    def __init__(self, lo, hi, data, grad):
        self.lo, self.hi, self.data, self.grad = lo, hi, data, grad


class ZeroAdamW:
    """AdamW over the ranks of `comm`, each keeping the moments of 1/N of the parameters.

    Built from an ordinary AdamW (fresh, or holding a checkpoint's state), whose moments it
    splits. params(), lr, step(), zero_grad() and state_dict() mean what they mean for AdamW;
    step() and state_dict() are collective: every rank calls them, at the same point.
    """

    def __init__(self, adamw, comm):
        self.comm, self.is_root = comm, comm.Get_rank() == 0
        self.layout = FlatLayout(adamw.params(), comm.Get_size())
        shard = self.layout.size // comm.Get_size()  # S
        self.start = comm.Get_rank() * shard  # this rank owns flat[start : start + S]
        self.flat = np.zeros(self.layout.size, self.layout.dtype)  # (L',) gradients, then weights
        self.grad_shard = np.zeros(shard, self.layout.dtype)  # (S,) the summed gradient here
        groups = [ParamGroup(self._pieces(g.params), g.weight_decay) for g in adamw.groups]
        self.inner = AdamW(groups, adamw.lr, adamw.betas, adamw.eps)
        self.inner.t = adamw.t
        for whole, mine in ((adamw.m, self.inner.m), (adamw.v, self.inner.v)):
            self.layout.pack(whole, self.flat)
            for piece, moment in zip(self.inner.params(), mine):
                moment[...] = self.flat[piece.lo:piece.hi]  # (hi - lo,)

    def _pieces(self, params):
        """The _Pieces of these parameters that fall in this rank's shard, in flat order."""
        spans = {id(p): (start, stop) for p, start, stop in self.layout.spans()}
        end, pieces = self.start + len(self.grad_shard), []
        for p in params:
            lo, hi = max(spans[id(p)][0], self.start), min(spans[id(p)][1], end)
            if lo < hi:
                grad = self.grad_shard[lo - self.start:hi - self.start]  # (hi - lo,)
                pieces.append(_Piece(lo, hi, self.flat[lo:hi], grad))
        return pieces

    def params(self):
        """Every parameter this optimizer updates (all of them, on every rank)."""
        return self.layout.params

    @property
    def lr(self):
        return self.inner.lr

    @lr.setter
    def lr(self, value):
        self.inner.lr = value

    @property
    def m(self):
        """The first moments this rank keeps: one array per piece of its shard."""
        return self.inner.m

    @property
    def v(self):
        return self.inner.v

    def reduce_gradients(self):
        """Sum the ranks' gradients, scattered: one Reduce_scatter of the flat buffer leaves
        this rank its shard's sum. Returns the pieces, whose .grad views hold that sum."""
        from mpi4py import MPI

        self.layout.pack([p.grad for p in self.params()], self.flat)
        self.comm.Reduce_scatter_block(self.flat, self.grad_shard, op=MPI.SUM)
        self.layout.pack([p.data for p in self.params()], self.flat)  # step() updates these
        return self.inner.params()

    def step(self):
        """AdamW on this rank's pieces (in place, in the own block of the flat buffer), then an
        in-place Allgather brings every rank's block to every rank, into the model."""
        from mpi4py import MPI

        self.inner.step()
        self.comm.Allgather(MPI.IN_PLACE, self.flat)
        for p, new in zip(self.params(), self.layout.views(self.flat)):
            p.data[...] = new

    def zero_grad(self):
        for p in self.params():
            p.grad = None

    def state_dict(self):
        """AdamW.state_dict() of the whole optimizer on rank 0, None on the others: each
        rank's moments, gathered (a Gather per moment; the root alone holds them all)."""
        state = {"t": np.array(self.inner.t), "lr": np.array(self.inner.lr)}
        for name, mine in (("m", self.inner.m), ("v", self.inner.v)):
            shard = np.zeros_like(self.grad_shard)  # (S,) padding stays zero
            for piece, moment in zip(self.inner.params(), mine):
                shard[piece.lo - self.start:piece.hi - self.start] = moment
            whole = np.empty_like(self.flat) if self.is_root else None  # (L',)
            self.comm.Gather(shard, whole, root=0)
            if self.is_root:
                state.update({f"{name}.{i}": a for i, a in enumerate(self.layout.views(whole))})
        return state if self.is_root else None


def moment_bytes(optimizer):
    """Bytes of AdamW moments this process keeps (AdamW or ZeroAdamW): 8 per parameter, or
    about 8 / N per parameter under ZeRO-1."""
    return sum(a.nbytes for a in optimizer.m + optimizer.v)
