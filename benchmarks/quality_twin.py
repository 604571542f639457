"""Is a gap in val loss the code or the seed? Train the shakespeare-char-cpu model for each seed
twice, in tinyllm and as its PyTorch twin (benchmarks/torch_gpt.py), from the same initial
weights on the same batches with the same schedule, and compare the final val losses.

    TINYLLM_DATA=path/to/tinyshakespeare.txt python benchmarks/quality_twin.py [--seeds 1337 1 2]

Both runs use tinyllm's data split, batch sampler, learning-rate schedule and evaluation windows;
only the forward, backward, clipping and AdamW are each library's own. If the two final losses
agree per seed, a difference from published figures comes from the seeds (initial weights and
batch order), not from the implementation. Each run is a worker process of its own (the two
libraries' thread pools collide in one process), one thread each, two at a time. Prints the
machine and a table; writes benchmarks/results/quality_twin.json.
"""
import argparse
import dataclasses
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # for machine and torch_gpt, sibling scripts
import harness  # noqa: E402
from machine import header  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    parser.add_argument("--iters", type=int, default=2000, help="(default: the preset's 2000)")
    parser.add_argument("--worker", choices=["tinyllm", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


# --- worker side: one library, one seed; prints the final val loss as JSON ---


def worker(args):
    if args.worker == "torch":
        import torch

        torch.set_num_threads(1)
    else:  # tuned as `tinyllm train` is: OpenBLAS's variable goes before NumPy loads
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
        from autograd.kernels import tune_process

        tune_process(threads=1)
    from tinyllm.config import preset
    from tinyllm.data.corpus import load_data
    from tinyllm.train import Pretraining, evaluate, new_run, train_step

    model_cfg, train_cfg = preset("shakespeare-char-cpu")
    train_cfg = dataclasses.replace(train_cfg, seed=args.seed, max_iters=args.iters,
                                    lr_decay_iters=args.iters)
    tokenizer, train_ids, val_ids = load_data(train_cfg)
    run = new_run(model_cfg, train_cfg, tokenizer)
    if args.worker == "tinyllm":
        task = Pretraining(train_ids, val_ids)
        for _ in range(args.iters):
            train_step(run, task)
        val = evaluate(run.model, val_ids, train_cfg.eval_iters, train_cfg.batch_size, args.seed)
    else:
        val = torch_run(run, train_ids, val_ids)
    print(json.dumps({"library": args.worker, "seed": args.seed, "val_loss": val}))


def torch_run(run, train_ids, val_ids):
    """Train run's model as a PyTorch twin with tinyllm's batches and schedule; its val loss."""
    import torch

    from tinyllm.data.batches import get_batch
    from tinyllm.optim import lr_at
    from torch_gpt import from_tinyllm, twin_optimizer

    cfg, T = run.train_cfg, run.model.config.block_size
    twin = from_tinyllm(run.model)
    optimizer = twin_optimizer(twin, cfg.learning_rate, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    for step in range(cfg.max_iters):
        x, y = get_batch(train_ids, cfg.batch_size, T, run.batch_rng)
        twin(torch.from_numpy(x), torch.from_numpy(y)).backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), cfg.grad_clip)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters,
                                cfg.lr_decay_iters)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return twin_evaluate(twin, val_ids, cfg, T)


def twin_evaluate(twin, ids, cfg, T):
    """tinyllm.train.evaluate's windows and mean, computed by the twin."""
    import torch

    from tinyllm.train import eval_windows

    total = 0.0
    with torch.no_grad():
        for x, y in eval_windows(ids, cfg.eval_iters, cfg.batch_size, T, cfg.seed):
            total += twin(torch.from_numpy(x), torch.from_numpy(y)).item() * len(x)
    return total / (cfg.eval_iters * cfg.batch_size)


# --- parent side ---


def run_worker(library, seed, iters):
    command = [sys.executable, __file__, "--worker", library, "--seed", str(seed),
               "--iters", str(iters)]
    return harness.run(command)


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    from autograd.kernels import set_threads

    set_threads(1)  # as each worker runs, so the GEMM peak is measured likewise
    line, machine = header(1)
    print(line, flush=True)  # the runs take many minutes
    jobs = [(library, seed) for seed in args.seeds for library in ("tinyllm", "torch")]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda job: run_worker(*job, args.iters), jobs))
    print(f"{'seed':>6}{'tinyllm':>10}{'PyTorch':>10}{'difference':>12}")
    rows = []
    for seed in args.seeds:
        ours, theirs = (next(r["val_loss"] for r in results
                             if r["seed"] == seed and r["library"] == lib)
                        for lib in ("tinyllm", "torch"))
        rows.append({"seed": seed, "tinyllm": ours, "torch": theirs})
        print(f"{seed:>6}{ours:>10.4f}{theirs:>10.4f}{ours - theirs:>12.1e}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "quality_twin.json").write_text(json.dumps(
        {"machine": machine, "iters": args.iters, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
