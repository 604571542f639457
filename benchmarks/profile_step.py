"""Where a training step's time goes: cProfile's self time, grouped into matmul (BLAS),
attention, the other fused kernels, the optimizer, and everything else (the graph: Tensor
bookkeeping, reshapes, small NumPy ops, Python). Also counts the minor page faults a step
costs (autograd/kernels/malloc.py; AUTOGRAD_MALLOC=default shows glibc's own behaviour).
On two threads the step runs as two halves at once (tinyllm/split_batch.py), and cProfile sees
this thread's: the same work as the other half's, plus waiting for it (counted as glue).

    python benchmarks/profile_step.py [--preset shakespeare-char-cpu] [--steps 10]
"""
import argparse
import cProfile
import dataclasses
import os
import pstats
import resource
import sys
import time
from pathlib import Path

# before NumPy loads OpenBLAS, as the `tinyllm` command does (autograd/kernels/threads.py)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import header  # noqa: E402  (a sibling script, found via HERE)

CATEGORIES = [  # (category, substring of the profiled function's file), first match wins
    ("matmul (BLAS)", "kernels/matmul.py"),
    ("attention kernels", "kernels/attention"),  # attention.py and attention_tiled.py
    ("other kernels", "autograd/kernels/"),
    ("optimizer + clipping", "tinyllm/optim.py"),
]


def categorise(stats):
    totals = {}
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():
        where = f"{filename}:{name}"
        category = next((c for c, key in CATEGORIES if key in where), "graph and glue")
        totals[category] = totals.get(category, 0.0) + tottime
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shakespeare-char-cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    from autograd.kernels import numba_support, tune_process
    from tinyllm.config import preset
    from tinyllm.model import GPT
    from tinyllm.optim import AdamW, clip_grad_norm, param_groups
    from tinyllm.split_batch import SplitBatch

    tune_process()  # as `tinyllm train` does
    print(header(numba_support.threads())[0])  # the GEMM peak under the same thread count
    model_cfg, train_cfg = preset(args.preset)
    model = GPT(dataclasses.replace(model_cfg, vocab_size=65), np.random.default_rng(0))
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-3)
    split = SplitBatch(model)  # as the training loop calls the model (split_batch.py)
    rng = np.random.default_rng(0)
    shape = (train_cfg.batch_size, model_cfg.block_size)

    def step():
        _, loss = split(rng.integers(0, 65, shape), rng.integers(0, 65, shape))
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):
        step()  # compile and warm up outside the profile
    profiler = cProfile.Profile()
    start, faults = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    profiler.runcall(lambda: [step() for _ in range(args.steps)])
    per_step = (time.perf_counter() - start) / args.steps * 1000
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
    totals = categorise(pstats.Stats(profiler))
    total = sum(totals.values())
    print(f"{args.preset}: {per_step:.1f} ms per step under the profiler, "
          f"{faults:,.0f} minor page faults per step")
    for category, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {category:<22}{1000 * seconds / args.steps:8.1f} ms  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
