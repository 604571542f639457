"""Data-parallel training on this machine, and what a network of such machines would make of it.

    python benchmarks/data_parallel.py [--presets shakespeare-char shakespeare-char-cpu]
                                       [--ranks 2] [--steps 5] [--warmup 2] [--zero 0|1]

Measured, per preset: training steps on the real code path (train.train_step: forward,
backward, gradient sum, clip, AdamW) over one global batch of R micro-batches (R = --ranks,
default the core count), run two ways on this machine's C cores: one process with grad_accum R
and C threads, and R ranks (`mpiexec -n R`) with one micro-batch and C / R threads each. So both
do the same arithmetic per step and their step times compare directly. Of the ranks' step, the
time inside dist.sum_gradients (packing, the Allreduce, and waiting for the slower rank), and
an Allreduce of the same buffer alone, between barriers, which gives the bus bandwidth
2 (R-1)/R * bytes / seconds. The token stream is random: a step's time does not depend on text.

Projected, per preset: the speed-up of N = 8 and 64 ranks, one per machine like this one, each
computing one micro-batch per step in the time the single process here took per micro-batch,
t_c, over a 10 and a 100 Gb/s network. A ring Allreduce moves 2 (N-1)/N * 4 L bytes per rank for
L float32 gradients, plus 2 (N-1) message latencies (assumed 20 us each, TCP-like), and nothing
overlaps it with the backward pass here, so a step takes t_c + t_comm and
    speed-up(N) = N t_c / (t_c + t_comm).
ZeRO-1 sends the same bytes (a reduce-scatter and an all-gather make one Allreduce).

Prints the machine (CPU, cores, fp32 GEMM peak), a table and the projection, and writes
benchmarks/results/data_parallel.json (--out). For a smoke test: --steps 1 --warmup 1
--batch-size 2 --presets shakespeare-char-cpu --out /tmp/dp.json.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import describe, gemm_gflops  # noqa: E402  (a sibling script, found via HERE)

NETWORKS_GBPS = (10, 100)
PROJECTED_RANKS = (8, 64)
LATENCY_S = 20e-6  # one message's latency, assumed


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["shakespeare-char",
                                                         "shakespeare-char-cpu"])
    parser.add_argument("--ranks", type=int, default=os.cpu_count(),
                        help="ranks of the data-parallel run (default: the core count)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--zero", type=int, default=0, choices=(0, 1), help="ZeRO-1 (default 0)")
    parser.add_argument("--batch-size", type=int, help="sequences per micro-batch (default: "
                        "the preset's; a smaller one for a smoke test)")
    parser.add_argument("--out", default=str(HERE / "results" / "data_parallel.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


# --- worker side: one preset, one (ranks, threads) layout, JSON from rank 0 on stdout ---


def setup(preset_name, batch_size, grad_accum):
    """A fresh run of the preset on a random token stream, and its Pretraining task."""
    from tinyllm.config import preset
    from tinyllm.train import Pretraining, new_run

    model_cfg, train_cfg = preset(preset_name)
    train_cfg = dataclasses.replace(train_cfg, grad_accum=grad_accum,
                                    batch_size=batch_size or train_cfg.batch_size)
    ids = np.random.default_rng(0).integers(0, 65, 200_000)  # (N,) random "text"
    run = new_run(model_cfg, train_cfg, SimpleNamespace(vocab_size=65))
    return run, Pretraining(ids, ids)


def timed_gradient_sums(dist):
    """Make dist.sum_gradients record the seconds of each call in the returned list."""
    seconds, untimed = [], dist.sum_gradients

    def sum_gradients(optimizer):
        tick = time.perf_counter()
        params = untimed(optimizer)
        seconds.append(time.perf_counter() - tick)
        return params

    dist.sum_gradients = sum_gradients
    return seconds


def allreduce_seconds(dist, size, repeats=5):
    """The fastest of `repeats` in-place Allreduces of `size` float32s, each after a barrier."""
    from mpi4py import MPI

    buffer, best = np.ones(size, dtype=np.float32), float("inf")  # (L,)
    for _ in range(repeats):
        dist.comm.Barrier()
        tick = time.perf_counter()
        dist.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        best = min(best, time.perf_counter() - tick)
    return best


def worker(args):
    from autograd.kernels import tune_process

    tune_process()  # AUTOGRAD_THREADS from the parent, as `tinyllm train` reads it
    from tinyllm.distributed import connect
    from tinyllm.train import train_step

    dist = connect(args.zero)
    run, task = setup(args.presets[0], args.batch_size, args.ranks // dist.size)
    dist.prepare(run, task)
    in_sums = timed_gradient_sums(dist)
    for _ in range(args.warmup):
        train_step(run, task)
    steps = []
    for _ in range(args.steps):
        dist.sum(0)  # line the ranks up, so each step's time starts together
        tick = time.perf_counter()
        train_step(run, task)
        steps.append(time.perf_counter() - tick)
    n_params = sum(p.data.size for p in run.optimizer.params())
    result = {"step_s": float(np.median(steps)), "n_params": n_params,
              "tokens_per_step": args.ranks * run.train_cfg.batch_size
              * run.model.config.block_size,
              "sum_gradients_s": float(np.median(in_sums[args.warmup:])) if dist.size > 1 else 0,
              "allreduce_s": allreduce_seconds(dist, n_params) if dist.size > 1 else 0}
    if dist.is_root:
        print(json.dumps(result))


# --- parent side: launch the workers, model the network, report ---


def measure(preset_name, ranks, threads, args):
    """One worker run (under mpiexec when ranks > 1); its result plus the layout."""
    env = dict(os.environ, AUTOGRAD_THREADS=str(threads))
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # before NumPy loads OpenBLAS, as the CLI
    command = [sys.executable, __file__, "--worker", "--presets", preset_name,
               "--ranks", str(args.ranks), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--zero", str(args.zero)]
    command += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks)] + command
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"worker failed: {' '.join(command)}\n{done.stderr}")
    row = json.loads(done.stdout.splitlines()[-1])
    return dict(row, preset=preset_name, ranks=ranks, threads=threads,
                tokens_per_s=row["tokens_per_step"] / row["step_s"])


def ring_seconds(n_params, ranks, gbps):
    """Seconds of a ring Allreduce of n_params float32s over `ranks` ranks at `gbps` Gb/s."""
    traffic = 2 * (ranks - 1) / ranks * 4 * n_params  # bytes each rank sends (and receives)
    return traffic * 8 / (gbps * 1e9) + 2 * (ranks - 1) * LATENCY_S


def projection(single, micro_batches):
    """{(N, Gb/s): (comm seconds, speed-up)} for one preset's single-process measurement."""
    t_c = single["step_s"] / micro_batches  # one micro-batch on a machine like this one
    out = {}
    for ranks in PROJECTED_RANKS:
        for gbps in NETWORKS_GBPS:
            t_comm = ring_seconds(single["n_params"], ranks, gbps)
            out[f"N={ranks}, {gbps} Gb/s"] = (t_comm, ranks * t_c / (t_c + t_comm))
    return out


def print_report(report, args):
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, fp32 GEMM peak {report['gemm_gflops']:.0f} "
          f"GFLOP/s (n=1024, all cores); load average {report['load_average']:.1f}")
    print(f"{'preset':<22}{'ranks x threads':>16}{'step ms':>10}{'tok/s':>9}"
          f"{'sum_gradients ms':>18}{'Allreduce ms':>14}{'bus GB/s':>10}")
    for r in report["rows"]:
        busbw = (2 * (r["ranks"] - 1) / r["ranks"] * 4 * r["n_params"] / r["allreduce_s"] / 1e9
                 if r["allreduce_s"] else 0.0)
        print(f"{r['preset']:<22}{r['ranks']:>9} x {r['threads']:<4}{r['step_s'] * 1e3:>10.1f}"
              f"{r['tokens_per_s']:>9.0f}{r['sum_gradients_s'] * 1e3:>18.2f}"
              f"{r['allreduce_s'] * 1e3:>14.2f}{busbw:>10.2f}")
    print("(sum_gradients: packing, the Allreduce and waiting for the slower rank; Allreduce: "
          "alone, between barriers)")
    keys = list(next(iter(report["projection"].values())))
    print(f"\nprojected: ring Allreduce, {LATENCY_S * 1e6:.0f} us latency, no overlap; "
          "communication ms per step / speed-up over one machine")
    print(f"{'preset':<22}" + "".join(f"{k:>20}" for k in keys))
    for name, proj in report["projection"].items():
        print(f"{name:<22}" + "".join(f"{t * 1e3:>11.1f} / {s:>5.1f}x" for t, s in proj.values()))
    print(f"\nOn {m['cores']} cores, 1 x {m['cores']} vs {args.ranks} x 1 compares how well "
          "threads and processes share one machine's cores:\nit is not a scaling figure, and "
          "the ranks talk through shared memory, so the Allreduce says nothing about a network."
          "\nThe projection is the scaling estimate; it uses only the single process's step "
          "time and the gradient's size.")


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    cores = os.cpu_count()
    rows = [measure(name, ranks, max(1, cores // ranks), args)
            for name in args.presets for ranks in (1, args.ranks)]
    singles = {r["preset"]: r for r in rows if r["ranks"] == 1}
    report = {"command": " ".join(["python"] + sys.argv), "machine": describe(),
              "gemm_gflops": gemm_gflops(), "load_average": os.getloadavg()[0], "rows": rows,
              "projection": {name: projection(single, args.ranks)
                             for name, single in singles.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print_report(report, args)


if __name__ == "__main__":
    main()
