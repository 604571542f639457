"""Tokens per second of a full training step (forward, backward, clip, AdamW), tinyllm vs
PyTorch eager on the identical model, in the same process on the same threads.

    python benchmarks/train_step.py [--presets shakespeare-char-cpu shakespeare-char]
                                    [--rounds 5] [--steps 10] [--threads N]

The two are measured in alternating rounds (ours, theirs, ours, ...) so drift in machine load
hits both alike; the figure is the median step time over all steps. Prints a table and writes
benchmarks/results/train_step.json. Without PyTorch installed only tinyllm is measured.
"""
import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["shakespeare-char-cpu",
                                                         "shakespeare-char"])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--steps", type=int, default=10, help="steps per round (default 10)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both libraries (default: all cores)")
    parser.add_argument("--out", default="benchmarks/results/train_step.json")
    return parser.parse_args()


def tinyllm_stepper(model_cfg, train_cfg, batches):
    from tinyllm.model import GPT
    from tinyllm.optim import AdamW, clip_grad_norm, param_groups

    model = GPT(model_cfg, np.random.default_rng(0))
    optimizer = AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.99))

    def step(i):
        x, y = batches[i % len(batches)]
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    return model, step


def torch_stepper(model, threads, batches):
    import torch

    from torch_gpt import from_tinyllm

    torch.set_num_threads(threads)
    twin = from_tinyllm(model)
    decay = [p for p in twin.parameters() if p.dim() >= 2 and p is not twin.wpe.weight]
    rest = [p for p in twin.parameters() if not any(p is d for d in decay)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": rest, "weight_decay": 0.0}], lr=1e-3,
                                  betas=(0.9, 0.99))
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def step(i):
        x, y = data[i % len(data)]
        loss = twin(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def timed(step, start, n):
    times = []
    for i in range(start, start + n):
        t = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t)
    return times


def bench_preset(name, args):
    from tinyllm.config import preset

    model_cfg, train_cfg = preset(name)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=65, dropout=0.0)
    rng = np.random.default_rng(0)
    shape = (train_cfg.batch_size, model_cfg.block_size)
    batches = [(rng.integers(0, 65, shape), rng.integers(0, 65, shape)) for _ in range(4)]
    model, ours = tinyllm_stepper(model_cfg, train_cfg, batches)
    theirs = None
    try:
        theirs = torch_stepper(model, args.threads, batches)
        loss_gap = abs(ours(0) - theirs(0))  # same weights, same batch: same loss
    except ImportError:
        loss_gap = None
    results = {"ours": [], "torch": []}
    ours(1), theirs and theirs(1)  # warm-up: Numba compilation, allocator, caches
    for r in range(args.rounds):
        results["ours"] += timed(ours, 2 + r * args.steps, args.steps)
        if theirs:
            results["torch"] += timed(theirs, 2 + r * args.steps, args.steps)
    tokens = shape[0] * shape[1]
    row = {"preset": name, "tokens_per_step": tokens, "first_loss_gap": loss_gap}
    for who, times in results.items():
        if times:
            row[f"{who}_step_ms"] = 1000 * float(np.median(times))
            row[f"{who}_tok_s"] = tokens / float(np.median(times))
    if theirs:
        row["ratio"] = row["ours_tok_s"] / row["torch_tok_s"]
    return row


def main():
    args = parse_args()
    os.environ["TINYLLM_THREADS"] = str(args.threads)  # before autograd is imported
    import sys

    sys.path.insert(0, str(Path(__file__).parent))  # for torch_gpt
    from autograd import kernels

    rows = [bench_preset(name, args) for name in args.presets]
    print(f"kernels: {kernels.backend()}, threads: {args.threads}")
    print(f"{'preset':<22}{'tinyllm tok/s':>15}{'torch tok/s':>13}{'ratio':>8}{'loss gap':>10}")
    for r in rows:
        gap = "-" if r["first_loss_gap"] is None else f"{r['first_loss_gap']:.1e}"
        print(f"{r['preset']:<22}{r['ours_tok_s']:>15.0f}{r.get('torch_tok_s', 0):>13.0f}"
              f"{r.get('ratio', 0):>8.2f}{gap:>10}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
