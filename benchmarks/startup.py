"""What a fresh process pays before it trains: `import autograd` and tuning the process (as the
`tinyllm` command does), then one training step of a tiny GPT (forward, backward, AdamW), cold
and warm.

    python benchmarks/startup.py [--warm-runs 3]

Cold is the first run ever: NUMBA_CACHE_DIR points at a new empty folder, so every Numba kernel
the step touches is compiled. Warm is each later run with that same folder, where
`@njit(cache=True)` loads the compiled machine code instead. Each run is a separate Python
process; the figures are measured inside it (import, step) and around it (the whole process,
interpreter start included). Python's own .pyc files are not cleared for the cold run.
Prints a table and writes benchmarks/results/startup.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The measured program: it prints one JSON line with its own timings.
PROGRAM = """
import json, os, time
start = time.perf_counter()
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import autograd.kernels
import numpy as np
autograd.kernels.tune_process()
imported = time.perf_counter()
from tinyllm.config import GPTConfig
from tinyllm.model import GPT
from tinyllm.optim import AdamW, param_groups
config = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32)
model = GPT(config, np.random.default_rng(0))
optimizer = AdamW(param_groups(model, 0.1), lr=1e-3)
ids = np.random.default_rng(1).integers(0, 65, (4, 33))
step_start = time.perf_counter()
_, loss = model(ids[:, :-1], ids[:, 1:])
loss.backward()
optimizer.step()
done = time.perf_counter()
print(json.dumps(dict(import_s=imported - start, step_s=done - step_start,
                      backend=autograd.kernels.backend(), loss=loss.item())))
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3, help="warm runs (default 3)")
    parser.add_argument("--out", default="benchmarks/results/startup.json")
    return parser.parse_args()


def run_once(cache_dir):
    """One fresh process with this Numba cache folder: its own timings plus the wall time."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), process_s=wall)


def median_run(runs):
    return {key: statistics.median(r[key] for r in runs) for key in ("import_s", "step_s",
                                                                    "process_s")}


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = run_once(cache_dir)
        warm = [run_once(cache_dir) for _ in range(args.warm_runs)]
    rows = {"cold": cold, "warm (median)": median_run(warm)}
    print(f"backend: {cold['backend']}")
    print(f"{'start':14} {'import s':>9} {'first step s':>13} {'process s':>10}")
    for name, r in rows.items():
        print(f"{name:14} {r['import_s']:9.2f} {r['step_s']:13.2f} {r['process_s']:10.2f}")
    result = dict(command=" ".join(["python"] + sys.argv), backend=cold["backend"],
                  cold=cold, warm_runs=warm, warm_median=rows["warm (median)"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
