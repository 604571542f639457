"""The matrix products of one training step, alone: NumPy's BLAS against PyTorch's, same shapes.

    python benchmarks/gemm_shapes.py [--preset shakespeare-char-cpu] [--threads N] [--repeats 200]

A Linear layer of a training step makes three products over the batch's R = B * T rows: the
forward x @ W (R, K) @ (K, N), and in the backward dx = dout @ W^T and dW = x^T @ dout. This
times each for every Linear shape of the preset's model (qkv, attention output, the MLP's two,
the head; the backward's transposes are views, as in the step), in a worker process per
library with the same thread count, and adds them up over the model's layers. It tells how
much of the gap between the two training steps (benchmarks/train_step.py) the BLAS libraries
themselves make, before any graph or kernel of ours runs. Medians of `repeats` calls after 20
warm-up calls. Prints the machine and a table; writes benchmarks/results/gemm_shapes.json.
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as the tinyllm command sets it
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (sibling scripts)
from machine import header  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shakespeare-char-cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both libraries (default: all cores)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls a product")
    parser.add_argument("--out", default=str(HERE / "results" / "gemm_shapes.json"))
    parser.add_argument("--worker", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    return parser.parse_args()


def linear_shapes(preset_name):
    """[(name, K, N, how many per step)] of the preset's Linears; and R, the rows of a batch."""
    from tinyllm.config import preset

    model_cfg, train_cfg = preset(preset_name)
    C, L = model_cfg.n_embd, model_cfg.n_layer
    shapes = [("attn.c_attn", C, 3 * C, L), ("attn.c_proj", C, C, L), ("mlp.c_fc", C, 4 * C, L),
              ("mlp.c_proj", 4 * C, C, L), ("lm_head", C, 65, 1)]  # 65: Tiny Shakespeare's
    return shapes, train_cfg.batch_size * model_cfg.block_size


def median_us(product, repeats):
    return 1e6 * harness.median_seconds(product, repeats, warmup=20)[0]


def worker(args):
    """One library: {name: [fwd, dx, dW] microseconds}, JSON on stdout."""
    shapes, R = linear_shapes(args.preset)
    rng = np.random.default_rng(0)
    if args.worker == "torch":
        import torch

        torch.set_num_threads(args.threads)
        convert, mm, T = torch.from_numpy, torch.mm, (lambda a: a.t())
    else:
        from autograd.kernels import set_threads

        set_threads(args.threads)
        convert, mm, T = (lambda a: a), np.matmul, (lambda a: a.T)
    result = {}
    for name, K, N, _ in shapes:
        x, w, dout = (convert(rng.standard_normal(s, dtype=np.float32))
                      for s in ((R, K), (K, N), (R, N)))
        result[name] = [median_us(lambda: mm(x, w), args.repeats),  # (R, K) @ (K, N)
                        median_us(lambda: mm(dout, T(w)), args.repeats),  # (R, N) @ (N, K)
                        median_us(lambda: mm(T(x), dout), args.repeats)]  # (K, R) @ (R, N)
    print(json.dumps(result))


def run_worker(who, args):
    command = [sys.executable, __file__, "--worker", who, "--preset", args.preset,
               "--threads", str(args.threads), "--repeats", str(args.repeats)]
    return harness.run(command)


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    from autograd.kernels import tune_process

    tune_process(args.threads)
    line, machine = header(args.threads)
    print(line, flush=True)
    try:
        import torch  # noqa: F401  (only whether it is there; it runs in its own process)

        libraries = ["numpy", "torch"]
    except ImportError:
        libraries = ["numpy"]
    times = {who: run_worker(who, args) for who in libraries}
    shapes, R = linear_shapes(args.preset)
    print(f"{args.preset}: R = {R} rows, {args.threads} threads; microseconds, fwd / dx / dW")
    totals = {who: 0.0 for who in libraries}
    for name, K, N, count in shapes:
        cells = []
        for who in libraries:
            fwd, dx, dw = times[who][name]
            totals[who] += count * (fwd + dx + dw)
            cells.append(f"{who} {fwd:6.0f} / {dx:6.0f} / {dw:6.0f}")
        print(f"{name:12} ({K:4} x {N:4}) x{count}  " + "   ".join(cells))
    print("a step's products: " + ", ".join(f"{who} {totals[who] / 1000:.1f} ms"
                                            for who in libraries))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "preset": args.preset, "rows": R,
                                          "threads": args.threads, "microseconds": times,
                                          "step_ms": {w: t / 1000 for w, t in totals.items()}},
                                         indent=1))


if __name__ == "__main__":
    main()
