"""Tokens per second of a full training step (forward, backward, clip, AdamW), tinyllm vs
PyTorch eager on the identical model (same initial weights, same batches, same thread count).

    python benchmarks/train_step.py [--presets shakespeare-char-cpu shakespeare-char]
                                    [--rounds 5] [--steps 10] [--threads N] [--dropout]

Each library runs in its own worker process, in alternating rounds (ours, theirs, ours, ...), so
drift in machine load hits both alike. Separate processes matter: in one process PyTorch's
OpenMP pool and ours (Numba + OpenBLAS) step on each other — measured 267 ms per PyTorch step
instead of 38 ms. The figure is the median step time over all timed steps; each worker first
runs two untimed steps (compilation, allocator warm-up). Both first report the loss of one
forward in evaluation mode, which must agree: the same model computing the same thing. Dropout
is off unless --dropout asks for each preset's own (shakespeare-char trains with 0.2; its masks
differ between the libraries, so only the evaluation-mode loss is compared). Prints the machine
and a table, and writes benchmarks/results/train_step.json (train_step_dropout.json with
--dropout). Without PyTorch installed only tinyllm is measured.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # for machine and torch_gpt, sibling scripts
import harness  # noqa: E402
from machine import header  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["shakespeare-char-cpu",
                                                         "shakespeare-char"])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps a round (default 10)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both libraries (default: all cores)")
    parser.add_argument("--dropout", action="store_true",
                        help="train with each preset's dropout (default: none)")
    parser.add_argument("--out", help="default: benchmarks/results/train_step[_dropout].json")
    parser.add_argument("--worker", choices=["tinyllm", "torch"], help=argparse.SUPPRESS)
    return parser.parse_args()


# --- worker side: one library, one preset, a few timed steps, JSON on stdout ---


def setup(preset_name, dropout=False):
    """The model config (the preset's dropout, or none) and four fixed batches, the same in both
    workers."""
    from tinyllm.config import preset

    model_cfg, train_cfg = preset(preset_name)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=65,
                                    dropout=model_cfg.dropout if dropout else 0.0)
    rng = np.random.default_rng(0)
    shape = (train_cfg.batch_size, model_cfg.block_size)
    return model_cfg, [(rng.integers(0, 65, shape), rng.integers(0, 65, shape)) for _ in range(4)]


def tinyllm_step(model_cfg, batches):
    """(step(i) -> loss of a training step on batch i, check() -> loss of batch 0 in evaluation
    mode)"""
    from autograd import no_grad
    from tinyllm.model import GPT
    from tinyllm.optim import AdamW, clip_grad_norm, param_groups
    from tinyllm.split_batch import SplitBatch

    model = GPT(model_cfg, np.random.default_rng(0))
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))
    split = SplitBatch(model)  # as the training loop calls the model: halves at once on 2 cores

    def step(i):
        x, y = batches[i % len(batches)]
        _, loss = split(x, y)
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    def check():
        with no_grad():
            loss = model.eval()(*batches[0])[1].item()
        model.train()
        return loss

    return step, check


def torch_step(model_cfg, batches, threads):
    """As tinyllm_step."""
    import torch

    from tinyllm.model import GPT
    from torch_gpt import from_tinyllm, twin_optimizer

    torch.set_num_threads(threads)
    twin = from_tinyllm(GPT(model_cfg, np.random.default_rng(0)))  # the same initial weights
    optimizer = twin_optimizer(twin, 1e-3, (0.9, 0.99), 0.1)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def step(i):
        x, y = data[i % len(data)]
        loss = twin(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def check():
        with torch.no_grad():
            loss = twin.eval()(*data[0]).item()
        twin.train()
        return loss

    return step, check


def worker(args):
    if args.worker == "torch":
        import torch  # noqa: F401  (first: its OpenMP runtime reads the environment as we left it)
    else:
        from autograd.kernels import tune_process

        tune_process(args.threads)  # as `tinyllm train` does
    model_cfg, batches = setup(args.presets[0], args.dropout)
    if args.worker == "torch":
        step, check = torch_step(model_cfg, batches, args.threads)
    else:
        step, check = tinyllm_step(model_cfg, batches)
    first_loss = check()
    step(0)
    step(1)
    times = []
    for i in range(2, 2 + args.steps):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    print(json.dumps({"first_loss": first_loss, "times": times}))


# --- parent side: alternate workers, collect, report ---


def run_worker(who, preset_name, args):
    env = dict(os.environ)
    if who == "tinyllm":
        # what `tinyllm train` sets before NumPy loads OpenBLAS (autograd/kernels/threads.py);
        # this script imports NumPy first. Not for PyTorch: its workers are its own business.
        env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    command = [sys.executable, __file__, "--worker", who, "--presets", preset_name,
               "--steps", str(args.steps), "--threads", str(args.threads)]
    command += ["--dropout"] if args.dropout else []
    return harness.run(command, env)


def bench_preset(name, args, libraries):
    times = {who: [] for who in libraries}
    first = {}
    for _ in range(args.rounds):
        for who in libraries:
            result = run_worker(who, name, args)
            times[who] += result["times"]
            first[who] = result["first_loss"]
    model_cfg, batches = setup(name, args.dropout)
    tokens = batches[0][0].size
    row = {"preset": name, "tokens_per_step": tokens, "dropout": model_cfg.dropout}
    for who, ts in times.items():
        row[f"{who}_step_ms"] = 1000 * float(np.median(ts))
        row[f"{who}_tok_s"] = tokens / float(np.median(ts))
    if "torch" in libraries:
        row["ratio"] = row["tinyllm_tok_s"] / row["torch_tok_s"]
        row["first_loss_gap"] = abs(first["tinyllm"] - first["torch"])
    return row


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    from autograd.kernels import set_threads

    set_threads(args.threads)  # as the tinyllm worker's, so the GEMM peak is measured likewise
    line, machine = header(args.threads)
    print(line, flush=True)  # the rounds take minutes
    try:
        import torch  # noqa: F401

        libraries = ["tinyllm", "torch"]
    except ImportError:
        libraries = ["tinyllm"]
    rows = [bench_preset(name, args, libraries) for name in args.presets]
    print(f"threads: {args.threads}; medians of {args.rounds} x {args.steps} steps")
    print(f"{'preset':<22}{'dropout':>8}{'tinyllm ms':>11}{'tok/s':>8}{'torch ms':>10}{'tok/s':>8}"
          f"{'ratio':>7}{'loss gap':>10}")
    for r in rows:
        print(f"{r['preset']:<22}{r['dropout']:>8}{r['tinyllm_step_ms']:>11.1f}"
              f"{r['tinyllm_tok_s']:>8.0f}"
              f"{r.get('torch_step_ms', 0):>10.1f}{r.get('torch_tok_s', 0):>8.0f}"
              f"{r.get('ratio', 0):>7.2f}{r.get('first_loss_gap', 0):>10.1e}")
    name = "train_step_dropout.json" if args.dropout else "train_step.json"
    out = Path(args.out or HERE / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "threads": args.threads,
                                          "rows": rows, "load_average": os.getloadavg()},
                                         indent=1))


if __name__ == "__main__":
    main()
