"""Where a cold start's compile time goes: Numba's compile events for one forward and one
backward pass of the warm-up's tiny model (tinyllm/cli/warmup.py), in one process, with an
empty Numba cache.

    python benchmarks/compile_time.py [--preset shakespeare-char-cpu] [--top 12]

For each direction it prints the wall time of the pass and, largest first, each compiled
function's own time: its compile minus that of the functions it calls, which Numba compiles
first, within its own (nested) event. A function compiled twice (two signatures) is summed.
`benchmarks/startup.py` times the whole job, where the warm-up splits this work between two
processes. Prints the machine and writes benchmarks/results/compile_time.json.
"""
import argparse
import atexit
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

# before Numba is imported (it reads the variable once): every kernel compiles afresh
CACHE = tempfile.mkdtemp(prefix="numba-cold-")
atexit.register(shutil.rmtree, CACHE, True)  # removed however the script ends
os.environ["NUMBA_CACHE_DIR"] = CACHE
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as the tinyllm command sets it

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import header  # noqa: E402  (a sibling script, found via HERE)


def own_times(events):
    """{function's qualified name: its own seconds} from Numba's start/end compile events,
    which nest: a caller's event encloses those of the callees it compiles."""
    stack, own = [], {}  # stack: [name, start, seconds spent in callees]
    for timestamp, event in events:
        name = event.data["dispatcher"].py_func.__qualname__
        if event.is_start:
            stack.append([name, timestamp, 0.0])
            continue
        name, start, in_callees = stack.pop()
        own[name] = own.get(name, 0.0) + (timestamp - start) - in_callees
        if stack:
            stack[-1][2] += timestamp - start
    return own


def timed(fn):
    """(fn()'s result, its seconds, {function: own compile seconds}) for one call."""
    from numba.core import event

    with event.install_recorder("numba:compile") as recorder:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    return result, seconds, own_times(recorder.buffer)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shakespeare-char-cpu")
    parser.add_argument("--top", type=int, default=12, help="functions listed a pass (12)")
    parser.add_argument("--out", default="benchmarks/results/compile_time.json")
    args = parser.parse_args()
    from autograd.kernels import tune_process
    from tinyllm.cli.warmup import tiny_model
    from tinyllm.config import preset

    tune_process()
    line, machine = header(os.cpu_count())
    print(f"{line}; Numba {version('numba')}")
    model_cfg, _ = preset(args.preset)
    model, ids = tiny_model(dataclasses.replace(model_cfg, vocab_size=65))
    (_, loss), forward_s, forward = timed(lambda: model(ids, ids))
    _, backward_s, backward = timed(loss.backward)
    result = dict(command=" ".join(["python"] + sys.argv), machine=machine, preset=args.preset,
                  passes={})
    for name, seconds, own in (("forward", forward_s, forward), ("backward", backward_s, backward)):
        print(f"\n{name}: {seconds:.2f} s, of which compiling {sum(own.values()):.2f} s; "
              "own compile time, largest first:")
        for function, s in sorted(own.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"  {s:6.2f} s  {function}")
        result["passes"][name] = dict(seconds=seconds, own=own)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
