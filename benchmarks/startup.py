"""What a fresh process pays before it trains, cold and warm: the `tinyllm train` job itself to
the end of its first step, and `import autograd` plus one training step of a tiny GPT.

    TINYLLM_DATA=path/to/tinyshakespeare.txt python benchmarks/startup.py [--warm-runs 3]

Cold is the first run ever: NUMBA_CACHE_DIR points at a new empty folder, so every Numba kernel
a step touches is compiled. Warm is each later run with that same folder, where
`@njit(cache=True)` loads the compiled machine code instead. Each run is a separate Python
process; Python's own .pyc files are not cleared for the cold runs.

1. The job: `tinyllm train --preset shakespeare-char-cpu --data FILE --max-iters 1`, timed from
   process start to the end of its first training step (the moment out/steps.jsonl gets its
   first line), which includes reading and encoding the text and the preset's evaluation at
   step 0 (eval_iters batches of train and of val text, as the job runs it); "compile s" is
   what the job prints after preparing its kernels. Cold twice: as it runs, compiling in 2
   processes when it may use 2 cores (tinyllm/cli/warmup.py), and with AUTOGRAD_THREADS=1,
   where one process compiles everything, as every first run did before the helper (one
   thread also slows the evaluation and the step).
2. The library: `import autograd` and tuning the process (as the `tinyllm` command does), then
   one training step of a tiny GPT (forward, backward, AdamW), timed inside the process.

Prints the machine and two tables, and writes benchmarks/results/startup.json. About 2 minutes on
2 cores, most of it the three cold compiles.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from machine import header  # noqa: E402  (a sibling script, found via HERE)

JOB = ["-m", "tinyllm.cli", "train", "--preset", "shakespeare-char-cpu", "--max-iters", "1",
       "--sample-tokens", "0", "--no-progress"]

# The library's program: it prints one JSON line with its own timings.
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
    parser.add_argument("--data", default=os.environ.get("TINYLLM_DATA"),
                        help="Tiny Shakespeare text file (default: $TINYLLM_DATA)")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm runs of each (default 3)")
    parser.add_argument("--out", default="benchmarks/results/startup.json")
    args = parser.parse_args()
    if not args.data:
        parser.error("pass --data or set TINYLLM_DATA to the Tiny Shakespeare text file")
    args.data = str(Path(args.data).resolve())
    return args


def environment(cache_dir, **extra):
    return dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT), **extra)


def run_job(cache_dir, data, **extra_env):
    """One `tinyllm train` process with this Numba cache folder (and any extra environment).
    -> {first_step_s, compile_s, process_s}; compile_s as the job printed it."""
    with tempfile.TemporaryDirectory() as out:
        steps = Path(out) / "steps.jsonl"
        start = time.perf_counter()
        job = subprocess.Popen([sys.executable, *JOB, "--data", data, "--out-dir", out],
                               env=environment(cache_dir, **extra_env), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first_step = _when_written(steps, job) - start
        output = job.communicate()[0]
        wall = time.perf_counter() - start
    if job.returncode:
        raise RuntimeError(f"tinyllm train failed:\n{output}")
    seconds = re.search(r"(?:compiled|done) in ([\d.]+) s", output)
    return dict(first_step_s=first_step, compile_s=float(seconds[1]), process_s=wall)


def _when_written(path, process):
    """perf_counter() when `path` first holds a whole line, polled every 5 ms while `process`
    runs (the job writes its output in small amounts, so its pipe cannot fill meanwhile)."""
    while process.poll() is None:
        if path.is_file() and path.read_text().endswith("\n"):
            return time.perf_counter()
        time.sleep(0.005)
    raise RuntimeError(f"the job ended before writing {path}")


def run_program(cache_dir):
    """One fresh process of PROGRAM with this Numba cache folder: its own timings plus the
    wall time around it."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=environment(cache_dir),
                          cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), process_s=wall)


def median_run(runs, keys):
    return {key: statistics.median(r[key] for r in runs) for key in keys}


def measure_job(data, warm_runs):
    """{row name: timings} of the job: cold with the helper, warm, cold in one process."""
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = run_job(cache_dir, data)
        warm = [run_job(cache_dir, data) for _ in range(warm_runs)]
    with tempfile.TemporaryDirectory() as cache_dir:
        alone = run_job(cache_dir, data, AUTOGRAD_THREADS="1")
    return {"cold, 2 processes": cold, "cold, one (1 thread)": alone,
            f"warm (median of {warm_runs})": median_run(warm, cold)}, warm


def measure_program(warm_runs):
    """{row name: timings} of PROGRAM, cold and warm, and the warm runs."""
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = run_program(cache_dir)
        warm = [run_program(cache_dir) for _ in range(warm_runs)]
    return {"cold": cold, f"warm (median of {warm_runs})": median_run(
        warm, ("import_s", "step_s", "process_s"))}, warm


def print_tables(line, machine, job, program):
    print(f"{line}; Python {machine['python']}, NumPy {machine['numpy']}, "
          f"Numba {machine['numba']}")
    print("\ntinyllm train --preset shakespeare-char-cpu, to the end of its first step:")
    print(f"{'start':22} {'compile s':>10} {'first step s':>13} {'process s':>10}")
    for name, r in job.items():
        print(f"{name:22} {r['compile_s']:10.1f} {r['first_step_s']:13.2f} "
              f"{r['process_s']:10.2f}")
    print(f"\nimport autograd + one step of a tiny GPT ({program['cold']['backend']} backend):")
    print(f"{'start':22} {'import s':>10} {'first step s':>13} {'process s':>10}")
    for name, r in program.items():
        print(f"{name:22} {r['import_s']:10.2f} {r['step_s']:13.2f} {r['process_s']:10.2f}")


def main():
    args = parse_args()
    line, machine = header(os.cpu_count())  # BLAS at its default: every core
    machine["numba"] = version("numba")
    job, job_warm = measure_job(args.data, args.warm_runs)
    program, program_warm = measure_program(args.warm_runs)
    print_tables(line, machine, job, program)
    result = dict(command=" ".join(["python"] + sys.argv), machine=machine, job=job,
                  job_warm_runs=job_warm, program=program, program_warm_runs=program_warm,
                  load_average=os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
