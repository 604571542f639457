"""Tokens per second of generation: plain (the context rerun every step), KV-cached through the
autograd graph, KV-cached through the compiled step (tinyllm/decode.py, float32 and int8
weights), and speculative decoding with a small draft, all greedy (temperature 0) from
Shakespeare prompts.

    python benchmarks/generate.py [--target CKPT] [--draft CKPT] [--new-tokens 256]
                                  [--k 2 4 6] [--rounds 3] [--threads N]

The target is the `shakespeare-char` model (6 layers, 384 channels, block 256), the draft the
`shakespeare-char-cpu` one (4 layers, 128 channels, block 64): trained checkpoints when given
(made with `tinyllm train --preset ... --out_dir ...`), else random weights. Speed does not
depend on the weights, but the acceptance rate does, so without checkpoints it is meaningless
and shown in brackets. Speculative decoding must reproduce the cached greedy output exactly.

Every figure is the median over rounds x prompts, methods alternating within a round so drift in
machine load hits each alike. Speedups are over cached decoding through the graph, the path
every step took before decode.py. Also measured, to explain the speculative figure: one target
pass over T = 1 .. k+1 new tokens through the compiled step, as speculative decoding runs it (it
assumes T = k+1 costs about as much as T = 1), one draft step (compiled, as speculative decoding
runs it), and from those the speedup each k would reach if drafting were free. int8 weights
change the model a little, so its row shows the fraction of tokens equal to the float model's
instead of "yes". Prints the machine and a table; writes benchmarks/results/generate.json.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

# before NumPy loads OpenBLAS, as the `tinyllm` command does (autograd/kernels/threads.py)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import header  # noqa: E402  (a sibling script, found via HERE)

PROMPTS = ["ROMEO:\n", "MENENIUS:\n", "KING HENRY VI:\n", "JULIET:\nO "]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="checkpoint of the target (default: random weights)")
    parser.add_argument("--draft", help="checkpoint of the draft (default: random weights)")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--k", type=int, nargs="+", default=[4], help="tokens drafted per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default="benchmarks/results/generate.json")
    return parser.parse_args()


def load(checkpoint, preset_name, seed):
    """(model, tokenizer): a trained checkpoint, or the preset with random weights."""
    from tinyllm.checkpoint import load_checkpoint
    from tinyllm.config import GPTConfig, preset
    from tinyllm.model import GPT
    from tinyllm.tokenizer import CharTokenizer

    if checkpoint:
        state, _, meta, tokenizer = load_checkpoint(checkpoint)
        model = GPT(GPTConfig(**meta["model_config"]))
        model.load_state_dict(state)
        return model.eval(), tokenizer
    config = dataclasses.replace(preset(preset_name)[0], vocab_size=65, dropout=0.0)
    tokenizer = CharTokenizer.from_text("".join(PROMPTS))  # ids below 65: fine for random weights
    return GPT(config, np.random.default_rng(seed)).eval(), tokenizer


def methods(target, draft, ks):
    """name -> function(idx, n, stats) returning the (n,) greedy tokens."""
    import copy

    from tinyllm.generate import generate
    from tinyllm.quantize import quantize_model
    from tinyllm.speculative import speculative_generate

    def collect(tokens):
        return np.array([int(t[0]) for t in tokens])  # (n,)

    int8 = quantize_model(copy.deepcopy(target))
    table = {
        "no cache": lambda idx, n, s: collect(generate(target, idx, n, 0, use_cache=False)),
        "cache, graph": lambda idx, n, s: collect(generate(target, idx, n, 0, fast=False)),
        "cache": lambda idx, n, s: collect(generate(target, idx, n, 0)),
        "cache, int8": lambda idx, n, s: collect(generate(int8, idx, n, 0)),
    }
    for k in ks:
        table[f"speculative k={k}"] = lambda idx, n, s, k=k: collect(
            speculative_generate(target, draft, idx, n, k=k, temperature=0, stats=s))
    return table


def measure(table, prompts, n, rounds):
    """name -> dict of per-run tokens/s, outputs and summed stats, methods alternating."""
    results = {name: {"tok_s": [], "outputs": [], "stats": {}} for name in table}
    for fn in table.values():  # warm-up: Numba compiles for the new shapes
        fn(prompts[0], 8, {})
    for _ in range(rounds):
        for idx in prompts:
            for name, fn in table.items():
                stats = {}
                start = time.perf_counter()
                out = fn(idx, n, stats)
                results[name]["tok_s"].append(n / (time.perf_counter() - start))
                results[name]["outputs"].append(out)
                for key, value in stats.items():
                    results[name]["stats"][key] = results[name]["stats"].get(key, 0) + value
    return results


def pass_costs(model, max_t, context=128, repeats=100, fast=False):
    """Median ms of one cached pass over T = 1 .. max_t new tokens after `context` tokens
    (fast: through the compiled step, as generation and speculative decoding run it)."""
    from tinyllm.decode import fast_decoder
    from tinyllm.kv_cache import KVCache, extend

    seq = np.zeros((1, context + max_t), dtype=np.int64)
    costs = {}
    for T in range(1, max_t + 1):
        times = []
        for _ in range(repeats):
            cache = KVCache(model, 1)
            decoder = fast_decoder(model, cache) if fast else None
            run = decoder.extend if decoder else lambda s: extend(model, cache, s)
            run(seq[:, :context])
            start = time.perf_counter()
            run(seq[:, :context + T])
            times.append(time.perf_counter() - start)
        costs[T] = 1000 * float(np.median(times))
    return costs


def summarise(results, fits, costs, reference="cache, graph"):
    """One row per method: median tokens/s, speedup over cached decoding through the graph,
    output identical to it (int8: the fraction of equal tokens), acceptance rate, tokens per
    target call, and the speedup speculative decoding would reach if drafting were free:
    tokens per call x cost(T=1) / cost(T=k+1), from the measured pass costs. The plain sampler
    crops its context differently once the sequence outgrows the window (kv_cache.py), so its
    outputs are compared over the first `fits` tokens of each run only."""
    base = float(np.median(results[reference]["tok_s"]))
    rows = []
    for name, r in results.items():
        tok_s = float(np.median(r["tok_s"]))
        ends = fits if name == "no cache" else [None] * len(fits)
        pairs = list(zip(r["outputs"], results[reference]["outputs"]))
        same = all(np.array_equal(a[:end], b[:end]) for (a, b), end in zip(pairs, ends))
        row = {"method": name, "tok_s": tok_s, "speedup_vs_cache": tok_s / base,
               "identical_to_cache": same, "runs": len(r["tok_s"])}
        if name == "cache, int8":
            row["identical_to_cache"] = float(np.mean([a == b for a, b in pairs]))
        s = r["stats"]
        if s:
            row["acceptance"] = s["accepted"] / max(1, s["drafted"])
            row["tokens_per_target_call"] = sum(map(len, r["outputs"])) / s["target_calls"]
            k = int(name.split("=")[1])
            row["free_draft_bound"] = row["tokens_per_target_call"] * costs[1] / costs[k + 1]
        rows.append(row)
    return rows


def print_table(rows, costs, graph_ms, draft_ms, trained):
    print(f"{'method':<20}{'tok/s':>9}{'x graph':>9}{'same':>6}{'accept':>9}{'tok/call':>10}"
          f"{'bound':>7}")
    for r in rows:
        accept = f"{r['acceptance']:.2f}" if "acceptance" in r else "-"
        accept = accept if trained or accept == "-" else f"({accept})"
        per_call = f"{r['tokens_per_target_call']:.2f}" if "acceptance" in r else "-"
        bound = f"{r['free_draft_bound']:.2f}" if "acceptance" in r else "-"
        same = r["identical_to_cache"]
        same = f"{same:.2f}" if not isinstance(same, bool) else "yes" if same else "NO"
        print(f"{r['method']:<20}{r['tok_s']:>9.1f}{r['speedup_vs_cache']:>9.2f}"
              f"{same:>6}{accept:>9}{per_call:>10}{bound:>7}")
    passes = ", ".join(f"T={t}: {ms:.2f}" for t, ms in costs.items())
    print(f"target pass ms after 128 tokens (compiled, as speculative decoding runs it): "
          f"{passes}; one step through the graph: {graph_ms:.2f}; draft step: "
          f"{draft_ms['one']:.2f} ms compiled on 1 thread, as "
          f"speculative decoding runs it ({draft_ms['all']:.2f} on all, "
          f"{draft_ms['graph']:.2f} through the graph)")
    print("same: output identical to cached decoding through the graph (no cache: while the "
          "sequence fits the window; int8: fraction of equal tokens); bound: the speedup if "
          "drafting cost nothing")


def main():
    args = parse_args()
    from autograd import kernels

    kernels.tune_process(args.threads)  # as the `tinyllm` command does
    line, machine = header(args.threads)  # the GEMM peak under the same thread count
    print(line)

    target, tokenizer = load(args.target, "shakespeare-char", 0)
    draft, _ = load(args.draft, "shakespeare-char-cpu", 1)
    prompts = [np.array([tokenizer.encode(p)]) for p in PROMPTS]  # (1, T) each
    results = measure(methods(target, draft, args.k), prompts, args.new_tokens, args.rounds)
    block = target.config.block_size
    costs = pass_costs(target, max(args.k) + 1, fast=True)
    rows = summarise(results, [block - p.shape[1] + 1 for p in prompts] * args.rounds, costs)
    graph_ms = pass_costs(target, 1)[1]
    draft_ms = {"all": pass_costs(draft, 1, context=32, fast=True)[1],
                "graph": pass_costs(draft, 1, context=32)[1]}
    with kernels.threads.limited(1):
        draft_ms["one"] = pass_costs(draft, 1, context=32, fast=True)[1]
    trained = bool(args.target and args.draft)
    print(f"kernels: {kernels.backend()}, threads: {args.threads}, new tokens: "
          f"{args.new_tokens}, prompts: {len(prompts)}, rounds: {args.rounds}, "
          f"weights: {'trained' if trained else 'random (acceptance meaningless)'}")
    print_table(rows, costs, graph_ms, draft_ms, trained)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    report = {"command": " ".join(["python"] + sys.argv), "machine": machine,
              "threads": args.threads,
              "kernels": kernels.backend(), "target": args.target, "draft": args.draft,
              "new_tokens": args.new_tokens, "prompts": PROMPTS, "rows": rows,
              "target_pass_ms": costs, "target_graph_step_ms": graph_ms,
              "draft_step_ms": draft_ms, "load_average": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
