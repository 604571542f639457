"""Does the main job reach nanoGPT's quality? Train the shakespeare-char-cpu preset with several
seeds through the `tinyllm train` command and report each run's final validation loss (mean over
200 batches at step 2000: `--eval-iters 200`, ten times the preset's quick estimate, nanoGPT's
eval_iters=20, so that seeds are compared and not the noise of 20 batches) and wall time.

    TINYLLM_DATA=path/to/tinyshakespeare.txt python benchmarks/quality.py [--seeds 1337 1 2]

For reference, nanoGPT publishes val loss 1.88 for this configuration. Each run's eval log is
kept in OUT/seed-N/log.jsonl; the summary goes to benchmarks/results/quality.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# before NumPy loads OpenBLAS, as the `tinyllm` command does (autograd/kernels/threads.py)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import header  # noqa: E402  (a sibling script, found via HERE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    parser.add_argument("--preset", default="shakespeare-char-cpu")
    parser.add_argument("--out", default="out/quality", help="run directories go here")
    parser.add_argument("extra", nargs="*", help="more `tinyllm train` flags, after --")
    args = parser.parse_args()
    from autograd.kernels import numba_support, tune_process

    tune_process()  # as each `tinyllm train` run does, so the GEMM peak is measured likewise
    line, machine = header(numba_support.threads())
    print(line, flush=True)
    runs = []
    for seed in args.seeds:
        out_dir = Path(args.out) / f"seed-{seed}"
        command = [sys.executable, "-m", "tinyllm.cli", "train", "--preset", args.preset,
                   "--seed", str(seed), "--out-dir", str(out_dir), "--sample-tokens", "0",
                   "--eval-iters", "200", "--overwrite", "--no-progress", *args.extra]
        start, load = time.time(), os.getloadavg()[0]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        log = [json.loads(line) for line in open(out_dir / "log.jsonl")]
        runs.append({"seed": seed, "wall_s": round(time.time() - start, 1),
                     "load_at_start": round(load, 2), "final": log[-1], "log": log})
        print(f"seed {seed}: val loss {log[-1]['val_loss']:.4f} at step {log[-1]['iter']}, "
              f"train loss {log[-1]['train_loss']:.4f}, {runs[-1]['wall_s']} s", flush=True)
    mean = sum(r["final"]["val_loss"] for r in runs) / len(runs)
    print(f"mean val loss over {len(runs)} seeds: {mean:.4f}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "quality.json").write_text(json.dumps(
        {"machine": machine, "preset": args.preset, "mean_val_loss": mean, "runs": runs},
        indent=1))


if __name__ == "__main__":
    main()
