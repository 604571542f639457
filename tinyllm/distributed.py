"""Data parallelism over MPI: N processes ("ranks") train one model as if they were one.

Every rank holds the whole model. A step's global batch is grad_accum * N micro-batches; each
rank computes the loss and gradients of its own grad_accum of them, then one Allreduce sums the
gradients of all ranks, so every rank holds the same summed gradient, clips it the same way and
takes the same AdamW step: the weights stay identical without ever being sent.

Why it equals one process. The loss of a step is the mean over the n = grad_accum * N
micro-batches, L = (1/n) sum_k L_k, so its gradient is sum_k (1/n) dL_k. One process adds those
n terms one after another; here rank r adds its own share and the Allreduce adds the ranks'
partial sums. Only the order of the float32 additions differs (the tests allow 1e-6 relative).
For that to hold the ranks must see the *same* micro-batches as the single process: every rank
draws all n micro-batches from the shared-seed batch generator, in order, and computes only its
own (rank r takes micro-batches r*grad_accum .. (r+1)*grad_accum - 1; drawing a window costs
next to nothing). Dropout masks come from a stream chosen by the micro-batch's index (train.py),
not by the rank, so they agree as well, and a checkpoint resumes on any number of ranks.

One flat buffer. The gradients are copied into one contiguous float32 vector (FlatLayout) and
reduced in one call, in place: N-1 messages instead of one round trip per parameter, each as
large as the network likes. A ring Allreduce sends and receives 2 (N-1)/N times the buffer's
bytes per rank (Patarasuk & Yuan, 2009), nearly independent of N: that is why data parallelism
scales until a step's compute gets as short as that transfer (benchmarks/data_parallel.py).

Without MPI nothing here touches mpi4py: `connect()` reads the launcher's environment variables
first and returns `OneProcess()`, whose every method is the identity. ZeRO-1 (zero.py) builds on
DataParallel and splits the optimizer's moments across the ranks.

What is left out: overlapping the Allreduce with the backward pass (PyTorch DDP's 25 MB buckets
sent while later layers still compute), gradient compression, splitting the model itself
(tensor or pipeline parallelism), splitting evaluation across ranks (every rank evaluates the
same windows), and surviving a lost rank (one failure ends the job: see all_or_none).

Shapes: L the number of trainable values, L' the padded length (a multiple of N).
"""
import contextlib
import os
import sys
import time
import traceback

import numpy as np

from tinyllm.optim import clip_grad_norm

ABORT_GRACE_S = 0.5  # seconds a failing rank waits, its error printed, before ending the job

# What MPI launchers set in each process they start: MPICH's and Intel's hydra and Slurm's PMI
# (PMI_SIZE), Open MPI (OMPI_COMM_WORLD_SIZE).
LAUNCH_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def launched_size(environ=None):
    """The number of ranks an MPI launcher started this process among; 1 if none did.

    >>> launched_size({"PMI_SIZE": "4"}), launched_size({})
    (4, 1)
    """
    environ = os.environ if environ is None else environ
    for name in LAUNCH_VARIABLES:
        if environ.get(name, "").isdigit():
            return int(environ[name])
    return 1


def connect(zero=0):
    """The ranks of this job: OneProcess() unless `mpiexec -n N` (N > 1) started us, else a
    DataParallel (zero=1: a ZeRO-1 Zero1) over MPI's world. On N ranks, rank 0 alone writes to
    standard output (the others' goes to /dev/null; errors still show on stderr), and unless
    AUTOGRAD_THREADS is set the ranks on one machine split its cores between them."""
    if launched_size() <= 1:
        return OneProcess()
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError("an MPI launcher started this process, but mpi4py is not "
                           "installed: pip install -e '.[mpi]'") from None

    from tinyllm.zero import Zero1  # here, not at the top: zero.py imports this module

    dist = Zero1(MPI.COMM_WORLD) if zero else DataParallel(MPI.COMM_WORLD)
    if not dist.is_root:
        sys.stdout = open(os.devnull, "w")
    _share_cores(MPI.COMM_WORLD)
    return dist


def _share_cores(comm):
    """Give each rank cores / (ranks on this machine) threads, for Numba and BLAS alike: more
    threads than cores would have the ranks' thread pools preempting each other."""
    from mpi4py import MPI

    from autograd import kernels
    from autograd.kernels.threads import cores

    if "AUTOGRAD_THREADS" in os.environ or "TINYLLM_THREADS" in os.environ:
        return
    local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()  # ranks on this machine
    kernels.set_threads(max(1, cores() // local))


class OneProcess:
    """The job of a plain run: one rank, and nothing to communicate."""

    size, rank, is_root = 1, 0, True
    clip_grad_norm = staticmethod(clip_grad_norm)

    def mine(self, k, n):
        """Whether micro-batch k (of the step's n) is computed here: always, alone."""
        return True

    def sum(self, *values):
        """The values summed over the ranks, as a list of floats."""
        return [float(v) for v in values]

    def max(self, value):
        return value

    def sum_gradients(self, optimizer):
        """Make every gradient the sum over the ranks; returns the parameters to clip."""
        return optimizer.params()

    def prepare(self, run, task):
        """Attach this job to `run` (train_step consults run.dist)."""
        run.dist = self

    def all_or_none(self):
        return contextlib.nullcontext()


class FlatLayout:
    """Where each parameter sits in one flat vector, so a whole model's gradients (or weights)
    travel as one message: parameter i holds [offsets[i], offsets[i + 1]).

    >>> from autograd.nn import Parameter
    >>> layout = FlatLayout([Parameter(np.ones((2, 3))), Parameter(np.zeros(2))], ranks=3)
    >>> layout.offsets.tolist(), layout.size   # 8 values, padded to a multiple of 3
    ([0, 6, 8], 9)
    """

    def __init__(self, params, ranks=1):
        self.params = list(params)
        sizes = [p.data.size for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # (P+1,)
        self.size = -(-int(self.offsets[-1]) // ranks) * ranks  # L', so N equal shards
        self.dtype = np.result_type(*[p.data.dtype for p in self.params])  # float32 for GPT

    def spans(self):
        """(parameter, start, stop) for each parameter."""
        return zip(self.params, self.offsets[:-1], self.offsets[1:])

    def pack(self, arrays, flat):
        """Copy one array per parameter into flat (L',); None (no gradient) packs as zeros."""
        for a, (_, start, stop) in zip(arrays, self.spans()):
            flat[start:stop] = 0.0 if a is None else a.reshape(-1)
        return flat

    def views(self, flat):
        """One view of flat per parameter, in its shape: no copies."""
        return [flat[start:stop].reshape(p.shape) for p, start, stop in self.spans()]


class DataParallel:
    """N ranks of MPI's `comm`, each computing its share of every step's micro-batches."""

    clip_grad_norm = staticmethod(clip_grad_norm)  # after sum_gradients: the global gradient

    def __init__(self, comm):
        self.comm = comm
        self.size, self.rank = comm.Get_size(), comm.Get_rank()
        self.is_root = self.rank == 0
        self.layout = self.flat = None  # built on the first step: see sum_gradients

    def mine(self, k, n):
        """Rank r computes the r-th block of n / size consecutive micro-batches.

        With 2 ranks and n = 4: rank 0 takes micro-batches 0 and 1, rank 1 takes 2 and 3."""
        return k * self.size // n == self.rank

    def sum(self, *values):
        """The values summed over the ranks (one Allreduce of float64s), as a list of floats."""
        from mpi4py import MPI

        total = np.array(values, dtype=np.float64)  # (len(values),)
        self.comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
        return total.tolist()

    def max(self, value):
        """The largest of the ranks' integers (e.g. the signal one of them received)."""
        from mpi4py import MPI

        largest = np.array([value], dtype=np.int64)  # (1,)
        self.comm.Allreduce(MPI.IN_PLACE, largest, op=MPI.MAX)
        return int(largest[0])

    def sum_gradients(self, optimizer):
        """Sum every parameter's gradient over the ranks: pack them into one flat buffer,
        Allreduce it in place, and leave each p.grad a view of its part of the sum."""
        from mpi4py import MPI

        params = optimizer.params()
        if self.layout is None:  # one buffer for the whole run: no allocation per step
            self.layout = FlatLayout(params)
            self.flat = np.empty(self.layout.size, self.layout.dtype)  # (L,)
        self.layout.pack([p.grad for p in params], self.flat)
        self.comm.Allreduce(MPI.IN_PLACE, self.flat, op=MPI.SUM)
        for p, grad in zip(params, self.layout.views(self.flat)):
            p.grad = grad
        return params

    def prepare(self, run, task):
        """Attach this job to `run`. The ranks need nothing sent to agree: each built the same
        model, optimizer and generators from the same seed (or read the same checkpoint)."""
        if not hasattr(task, "skip"):
            raise ValueError(f"{type(task).__name__} cannot train on several ranks: it has no "
                             "skip(model, cfg, rng) to draw other ranks' micro-batches")
        run.dist = self

    @contextlib.contextmanager
    def all_or_none(self):
        """Run the block; if it raises on this rank, print the error and end every rank at
        once (MPI_Abort): the others would otherwise wait forever in their next collective."""
        try:
            yield
        except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt (a second Ctrl-C) too
            print(f"error on rank {self.rank} of {self.size}: {type(e).__name__}: "
                  f"{' '.join(str(e).split())}", file=sys.stderr)
            if not isinstance(e, (ValueError, RuntimeError, OSError, KeyboardInterrupt)):
                traceback.print_exc()  # a bug, not a user's mistake (as tinyllm.cli sorts them)
            sys.stderr.flush()
            # mpiexec relays each rank's stderr through a pipe, and an Abort right after the
            # write can end the job before the message is through (seen once, under load):
            # give it a moment. Only a failing job pays it.
            time.sleep(ABORT_GRACE_S)
            self.comm.Abort(1)
