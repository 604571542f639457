"""Compiling the Numba kernels before training starts, on two processes when there is a lot
to compile.

The first run on a machine compiles every kernel a training step calls: ~13.5 s in one process
on our 2-core Xeon, most of it attention (forward ~6.8 s; backward ~4.5 s more, as it reuses
the forward's products `_dots` and `_mix`), then layer norm, GELU and cross-entropy, 0.2-0.5 s
each way (Numba's compile events). Numba compiles under one global lock, so threads cannot
share that work, but processes can: `@njit(cache=True)` writes each compiled kernel to Numba's
on-disk cache, where another process loads it in milliseconds. So on a cold cache the work is
split by direction:

  * a helper process (`python -m tinyllm.cli.warmup CONFIG_JSON`) runs a tiny model's forward
    under the NumPy backend (nothing to compile), then its backward under Numba: it compiles
    the backward kernels: 10-11 s from start to exit on a cold cache when it runs alone, less
    beside this process, which saves the products `_dots` and `_mix` early in its forward, so
    that the helper usually loads them instead (the pair finishes in ~8 s);
  * meanwhile this process runs the same tiny model's forward under Numba, compiling the
    forward kernels (~8 s), and AdamW's update (0.3 s); then it waits for the helper and runs
    the backward, which loads the helper's machine code from the cache.

Both processes build the same tiny model (`tiny_model`), so the helper calls each backward
kernel with the dtypes and array layouts training will (a different layout is a different
Numba specialisation, which this process would compile again): the NumPy forward returns its
saved arrays (attention's out and lse, layer norm's mean and rstd, ...) in the same dtypes and
layouts as the Numba forward; tests/tinyllm/cli/test_warmup.py checks that for every variant.

Should the helper fail (a crash, killed), this process compiles the backward kernels itself,
as it does without a helper. It never outlives us: we kill it on any exception (Ctrl-C), and
it exits by itself when its standard input, a pipe from us, closes, which also happens when we
are killed with no chance to clean up.

One hazard is closed by a lock: Numba updates a function's index file by read, modify, write,
with no lock between processes (numba/core/caching.py, IndexDataCacheFile.save), and
attention's forward and backward share small helpers (`_dots`, `_mix`, `_copy_rows`) that they
call with different signatures. Were both processes to save one of them in the same
millisecond, both entries could get the same data file, and one signature would later load the
other's machine code. So while they compile, both processes take an exclusive file lock in the
cache folder around each save (`cache_saves_locked`), which makes each read-modify-write whole.

Left out: more than one helper (on 2 cores the split is even as it is), and a helper where it
would not pay: the NumPy backend, fewer than 2 threads, a warm cache (see `backward_cached`).
"""
import contextlib
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import threading

import numpy as np

from autograd import kernels
from tinyllm.config import GPTConfig


def tiny_model(config):
    """A GPT shaped like `config` (its positions, norm, MLP and bias; float32, GPT's dtype, as
    training's) but small, and a batch for it: its step calls every kernel training calls.
    -> (model, ids (2, 8))."""
    from tinyllm.model import GPT

    tiny = dataclasses.replace(config, n_layer=1, n_head=2, n_embd=16, block_size=8,
                               vocab_size=min(config.vocab_size, 64))
    ids = np.zeros((2, 8), dtype=np.int64)  # (B, T)
    return GPT(tiny, np.random.default_rng(0)), ids


def compile_step(config):
    """One forward and backward of `tiny_model(config)`, so that Numba compiles (or loads) every
    kernel training calls; with a helper process for the backward kernels when that pays.
    -> "alone", "helped", or "helper failed" (this process then compiled them itself)."""
    model, ids = tiny_model(config)
    helper = start_helper(config) if helper_pays() else None
    try:
        with cache_saves_locked():
            _, loss = model(ids, ids)  # the forward kernels, compiled here meanwhile
            if kernels.backend() == "numba":  # else AdamW runs its NumPy reference
                compile_optimizer(np.float32)  # 0.3 s, while the helper is still at work
        helped = helper is not None and helper.wait() == 0
    finally:
        stop(helper)  # a no-op once it has exited; on Ctrl-C it must not outlive us
    loss.backward()  # the backward kernels: from the cache the helper filled, or compiled here
    return "alone" if helper is None else "helped" if helped else "helper failed"


def compile_optimizer(dtype):
    """Compile (or load) AdamW's one-pass update for `dtype` weights, with the argument types
    AdamW.step passes (1-D views, Python floats): one step on zeros, changing nothing."""
    from tinyllm.optim import adamw_update_numba

    p, g, m, v = (np.zeros(1, dtype) for _ in range(4))  # (1,) each
    adamw_update_numba(p, g, m, v, 1e-3, 0.0, 0.9, 0.999, 1e-8, 1.0, 1.0)


@contextlib.contextmanager
def cache_saves_locked():
    """Within the block, each save to Numba's on-disk cache holds an exclusive lock on a file
    in the cache folder, so the helper and this process never interleave the read-modify-write
    of one index file (see the module's docstring). Numba's own saves are unlocked."""
    from numba.core import caching

    unlocked = caching.IndexDataCacheFile.save

    def save(self, key, data):
        with open(os.path.join(self._cache_path, "tinyllm-warmup.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            unlocked(self, key, data)

    caching.IndexDataCacheFile.save = save
    try:
        yield
    finally:
        caching.IndexDataCacheFile.save = unlocked


def helper_pays():
    """True if a helper would shorten the compile: the Numba backend is on, this process may
    use 2 threads or more (AUTOGRAD_THREADS; under mpiexec the ranks split the cores), and the
    cache lacks the backward kernels. A warm start takes ~0.2 s; starting a helper, ~1 s."""
    from autograd.kernels import numba_support

    return (kernels.backend() == "numba" and numba_support.threads() >= 2
            and not backward_cached(np.float32))


def backward_cached(dtype):
    """True if Numba's cache holds the attention backward (the helper's longest compile, ~9 s)
    for `dtype` arrays and this CPU.

    The check reads the kernel's index file (a dict {(signature, CPU, code hashes): data file})
    through Numba's own cache object, so it sees what Numba would load: an index written by
    another Numba version, or before the source file last changed, reads as empty
    (numba/core/caching.py, IndexDataCacheFile._load_index). It takes well under a
    millisecond; loading or compiling a kernel would take 0.2 s or seconds. It looks at dtype
    and CPU only, not at the arrays' layouts: a model variant whose attention arrays have
    another layout (RoPE's rotated q and k are contiguous) finds the cache warm and compiles
    its own specialisations alone, as every run did before there was a helper. The names used
    are Numba's private ones, so if a Numba release changes them we assume a cold cache: the
    cost is a needless helper (~1 s of the other core), never a wrong kernel.
    """
    import numba
    from autograd.kernels import attention_tiled

    kernel = attention_tiled._backward_worker
    try:
        index = kernel._cache._cache_file._load_index()
        cpu = kernel.targetctx.codegen().magic_tuple()
        wanted = numba.from_dtype(np.dtype(dtype))
        return any(key[1] == cpu and key[0][0].dtype == wanted for key in index)
    except (AttributeError, IndexError, TypeError):
        return False


def start_helper(config):
    """Start `python -m tinyllm.cli.warmup CONFIG_JSON` with our environment (so the same
    NUMBA_CACHE_DIR and backend), our Python and our working directory.
    -> subprocess.Popen, or None if it cannot start (we then compile alone)."""
    spec = json.dumps(dataclasses.asdict(config))
    try:
        return subprocess.Popen([sys.executable, "-m", "tinyllm.cli.warmup", spec],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except OSError:  # no such file, no processes left, ...
        return None


def stop(helper):
    """Kill the helper if it still runs, and reap it (no zombie). None: nothing to do."""
    if helper is None:
        return
    if helper.poll() is None:
        helper.kill()
    helper.wait()
    helper.stdin.close()


def compile_backward(config):
    """The helper's share: `tiny_model(config)`'s forward under NumPy (nothing to compile),
    then its backward under Numba, which compiles the backward kernels into the cache."""
    model, ids = tiny_model(config)
    kernels.use("numpy")
    _, loss = model(ids, ids)
    kernels.use("numba")
    with cache_saves_locked():
        loss.backward()  # the backward closures look the kernels up now, under "numba"


def _exit_when_orphaned():
    """Exit at once when standard input closes: our parent closed it, or died."""

    def watch():
        # os.read, not sys.stdin's read: that holds a lock the interpreter wants at exit
        while os.read(sys.stdin.fileno(), 1024):  # b"" at end of file
            pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None):
    """The helper: `python -m tinyllm.cli.warmup '{"vocab_size": 65, ...}'` (a GPTConfig)."""
    argv = sys.argv[1:] if argv is None else argv
    _exit_when_orphaned()
    compile_backward(GPTConfig(**json.loads(argv[0])))


if __name__ == "__main__":
    main()
