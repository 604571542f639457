"""What the benchmarks share besides the machine (machine.py): worker processes and timings.

Two libraries' thread pools in one process slow each other down (train_step.py measured 267
against 38 ms a PyTorch step), so a benchmark that compares libraries starts a fresh worker
process for each: the script itself with --worker, which prints its result as one JSON line,
last. Timings are medians, which one slow call (another process waking up) does not move.
Imports only the standard library: a worker of another library's environment can use it.
"""
import json
import statistics
import subprocess
import sys
import time


def run(command, env=None):
    """Run the worker `command` (a list, as subprocess takes it) with `env` (default: ours) and
    return the JSON object on the last line it printed. A failing worker ends the benchmark,
    showing what the worker wrote to stderr."""
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the worker {' '.join(command[1:])} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_seconds(fn, repeats, warmup=0):
    """Call fn() `warmup` times untimed, then `repeats` times timed.
    -> (median seconds of the timed calls, the last call's result)."""
    for _ in range(warmup):
        fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
