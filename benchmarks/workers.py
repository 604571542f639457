"""Running each library's measurement in a process of its own: the benchmarks' workers.

Two libraries' thread pools in one process slow each other down (train_step.py measured 267
against 38 ms a PyTorch step), so a benchmark that compares libraries starts a fresh worker
process for each: the script itself with --worker, which prints its result as one JSON line,
last. Imports only the standard library: a worker of another library's environment can use it.
"""
import json
import subprocess
import sys


def run(command, env=None):
    """Run the worker `command` (a list, as subprocess takes it) with `env` (default: ours) and
    return the JSON object on the last line it printed. A failing worker ends the benchmark,
    showing what the worker wrote to stderr."""
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the worker {' '.join(command[1:])} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])
