"""GPT-2 124M in tinyllm vs Hugging Face transformers: cached greedy decoding, prefill and
evaluation throughput on the identical model, each library in its own process.

    python benchmarks/gpt2.py [--threads 2] [--rounds 3] [--new-tokens 64] [--prefill 512]
                              [--tokenizer GPT2_DIR] [--hf-python PYTHON] [--quick]

The parent builds a GPT-2 124M (12 layers, 12 heads, 768 channels, 1024 positions, 50257
tokens) with random weights and writes it as a Hugging Face folder (tinyllm.hf.save_gpt2);
tinyllm loads that with load_gpt2, transformers with GPT2LMHeadModel.from_pretrained, so both
compute with the same numbers and their greedy tokens can be compared. Speed does not depend
on the weights. Workers alternate (tinyllm, transformers, tinyllm, ...) so drift in machine
load hits both alike, and run in separate processes because the two libraries' thread pools
slow each other down in one (benchmarks/train_step.py measured it). Figures are medians over
rounds; each worker first runs every path once untimed (Numba compilation, allocator warm-up).

- decode: new tokens per second of greedy decoding with a KV cache after a 16-token prompt
  (tinyllm.generate; for transformers a loop over model(token, past_key_values=...), as
  generate() does it less its logits processors). tinyllm three ways: each step through the
  autograd graph (fast=False), through the compiled step (tinyllm/decode.py, the default),
  and the compiled step over int8 weights (tinyllm/quantize.py), each against transformers'
  float32 decode; the compiled float32 tokens must equal the graph's;
- prefill: tokens per second of the one forward over a 512-token prompt that fills the cache;
- eval: tokens per second of no-grad forwards over disjoint 1024-token windows, batch 1, of
  Tiny Shakespeare's validation split ($TINYLLM_DATA, its last 10%). Its ids: GPT-2's
  tokenizer from --tokenizer DIR (a GPT-2 folder, e.g. `tinyllm download gpt2`); without one
  (offline) random ids, as many as GPT-2's tokenizer makes of the text (~3.1 characters a
  token: nanoGPT's data/shakespeare gets 36,059 tokens from its 111,540 characters).

transformers runs under --hf-python (default: this Python) when it can import torch and
transformers there; else only tinyllm is measured. Prints the CPU, cores, each library's fp32
GEMM GFLOP/s under the same thread count, a table with the ratio tinyllm / transformers, and
writes benchmarks/results/gpt2.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (sibling scripts, found via HERE)
from machine import describe, gemm_gflops  # noqa: E402

SHAPE = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257)
CHARS_PER_TOKEN = 111_540 / 36_059  # GPT-2's tokenizer on the validation split (see above)
LIBRARIES = {"tinyllm": "tinyllm", "hf": "transformers"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--prompt", type=int, default=16, help="decode prompt tokens")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens decoded")
    parser.add_argument("--prefill", type=int, default=512, help="prefill prompt tokens")
    parser.add_argument("--window", type=int, default=1024, help="eval window tokens")
    parser.add_argument("--eval-windows", type=int, default=None,
                        help="eval windows (default: the whole validation split)")
    parser.add_argument("--tokenizer", metavar="DIR",
                        help="a GPT-2 folder whose vocab.json + merges.txt tokenize the text")
    parser.add_argument("--hf-python", default=sys.executable,
                        help="the Python with torch + transformers (default: this one)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 round, 8 new tokens, prefill 64, 2 windows of 128")
    parser.add_argument("--out", default=str(HERE / "results" / "gpt2.json"))
    parser.add_argument("--worker", choices=list(LIBRARIES), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)  # the folder the parent wrote
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.new_tokens, args.prefill = 1, 8, 64
        args.window, args.eval_windows = 128, 2
    return args


# --- worker side: one library, every measurement once, JSON on stdout ---


def time_decode(args, ids, decode):
    """(new tokens per second, the tokens) of one greedy decode, decode(prompt (1, T), n),
    after an untimed warm-up (compilation, first allocations)."""
    prompt = ids[None, :args.prompt]  # (1, T)
    decode(prompt, 2)
    start = time.perf_counter()
    tokens = decode(prompt, args.new_tokens)
    return args.new_tokens / (time.perf_counter() - start), tokens


def measure(args, ids, decode, prefill, forward):
    """Time the three workloads given as functions of (1, T) int64 arrays."""
    long_prompt = ids[None, :args.prefill]  # (1, T)
    W = args.window
    windows = [ids[None, i:i + W] for i in range(0, len(ids) - W + 1, W)][:args.eval_windows]
    prefill(long_prompt)  # warm-up, untimed
    forward(windows[0])
    decode_tok_s, tokens = time_decode(args, ids, decode)
    start = time.perf_counter()
    prefill(long_prompt)
    prefill_s = time.perf_counter() - start
    start = time.perf_counter()
    for window in windows:
        forward(window)
    eval_s = time.perf_counter() - start
    return {"tokens": tokens, "decode": decode_tok_s,
            "prefill": args.prefill / prefill_s, "eval": len(windows) * W / eval_s,
            "eval_tokens": len(windows) * W}


def tinyllm_worker(args, ids):
    from autograd import kernels, no_grad
    from tinyllm.generate import generate
    from tinyllm.hf import load_gpt2
    from tinyllm.kv_cache import KVCache, extend
    from tinyllm.quantize import quantize_model

    kernels.tune_process(args.threads)  # as the `tinyllm` command does
    model, _ = load_gpt2(args.model)
    int8 = quantize_model(load_gpt2(args.model)[0])

    def decoder(m, fast):
        return lambda prompt, n: [int(t[0]) for t in generate(m, prompt, n, 0, fast=fast)]

    def forward(x):
        with no_grad():
            model(x)

    prefill = lambda x: extend(model, KVCache(model, 1), x)  # noqa: E731
    result = measure(args, ids, decoder(model, False), prefill, forward)
    for name, m in (("fast", model), ("int8", int8)):
        result[f"decode_{name}"], result[f"tokens_{name}"] = time_decode(args, ids,
                                                                         decoder(m, True))
    return dict(result, gemm_gflops=gemm_gflops())


def hf_worker(args, ids):
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    model = GPT2LMHeadModel.from_pretrained(args.model).eval()

    @torch.no_grad()
    def decode(prompt, n):
        out = model(torch.from_numpy(prompt), use_cache=True)
        tokens = []
        while True:
            token = out.logits[:, -1].argmax(-1, keepdim=True)  # (1, 1) greedy
            tokens.append(int(token))
            if len(tokens) == n:
                return tokens
            out = model(token, past_key_values=out.past_key_values, use_cache=True)

    @torch.no_grad()
    def forward(x, use_cache=False):
        model(torch.from_numpy(x), use_cache=use_cache)

    result = measure(args, ids, decode, lambda x: forward(x, use_cache=True), forward)
    torch_matmul = lambda a, b: torch.from_numpy(a) @ torch.from_numpy(b)  # noqa: E731
    return dict(result, gemm_gflops=gemm_gflops(torch_matmul))


def worker(args):
    ids = np.load(Path(args.model) / "ids.npy")  # (N,) int64, written by the parent
    run = tinyllm_worker if args.worker == "tinyllm" else hf_worker
    print(json.dumps(run(args, ids)))


# --- parent side: the model folder, the ids, alternating workers, the report ---


def validation_ids(args):
    """(ids, how they were made) for the eval windows and the prompts."""
    from tinyllm.data.download import shakespeare_path

    text = shakespeare_path().read_text(encoding="utf-8")
    val = text[int(len(text) * 0.9):]  # TrainConfig's val_fraction: the last 10%
    if args.tokenizer:
        from tinyllm.hf import MERGES, VOCAB
        from tinyllm.tokenizer import BPETokenizer

        tok = BPETokenizer.from_gpt2(Path(args.tokenizer) / VOCAB, Path(args.tokenizer) / MERGES)
        return np.array(tok.encode(val), dtype=np.int64), "GPT-2's tokenizer"
    n = round(len(val) / CHARS_PER_TOKEN)
    rng = np.random.default_rng(0)
    return rng.integers(0, SHAPE["vocab_size"], n), f"random ids ({n} ~ GPT-2's count)"


def write_model(folder):
    """A random GPT-2 124M as a Hugging Face folder; its parameter count."""
    from tinyllm.config import GPTConfig
    from tinyllm.hf import EOT, save_gpt2
    from tinyllm.model import GPT
    from tinyllm.tokenizer import BPETokenizer

    model = GPT(GPTConfig(**SHAPE, dropout=0.0), np.random.default_rng(0))
    tokenizer = BPETokenizer({}, special_tokens={EOT: SHAPE["vocab_size"] - 1})  # unused
    save_gpt2(model, tokenizer, folder)
    return model.num_params()


def run_worker(who, folder, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if who == "tinyllm":  # what `tinyllm` sets before NumPy loads OpenBLAS (see train_step.py)
        env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    python = sys.executable if who == "tinyllm" else args.hf_python
    command = [python, __file__, "--worker", who, "--model", str(folder)]
    for flag in ("threads", "prompt", "new_tokens", "prefill", "window", "eval_windows"):
        if getattr(args, flag) is not None:
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return harness.run(command, env)


def has_transformers(python):
    check = [python, "-c", "import torch, transformers"]
    return subprocess.run(check, capture_output=True).returncode == 0


def collect(folder, args, libraries):
    """{library: {metric: [one value per round]}} plus the last round's greedy tokens."""
    runs = {who: [] for who in libraries}
    for _ in range(args.rounds):
        for who in libraries:
            runs[who].append(run_worker(who, folder, args))
    return {who: {key: [r[key] for r in rs] for key in rs[0]} for who, rs in runs.items()}


def summarise(results, args, n_params, ids_source):
    rows = []
    decode = f"decode: {args.new_tokens} new after {args.prompt}"
    for metric, what in (("decode", decode + ", graph"), ("decode_fast", decode + ", compiled"),
                         ("decode_int8", decode + ", int8"),
                         ("prefill", f"prefill: {args.prefill} tokens"),
                         ("eval", f"eval: {results['tinyllm']['eval_tokens'][0]} tokens")):
        row = {"metric": metric, "what": what,
               "tinyllm": float(np.median(results["tinyllm"][metric]))}
        if "hf" in results:  # transformers decodes one way: every decode row compares to it
            row["hf"] = float(np.median(results["hf"][metric.split("_")[0]]))
        row["ratio"] = row["tinyllm"] / row["hf"] if "hf" in results else None
        rows.append(row)
    report = {"command": " ".join(["python"] + sys.argv), "threads": args.threads,
              "machine": describe(), "n_params": n_params, "eval_ids": ids_source,
              "rows": rows, "load_average": os.getloadavg()}
    for who in results:
        report[f"{who}_gemm_gflops"] = float(np.median(results[who]["gemm_gflops"]))
    ours = {name: results["tinyllm"][f"tokens{name}"][-1] for name in ("", "_fast", "_int8")}
    report["compiled_same_as_graph"] = ours["_fast"] == ours[""]
    report["int8_same_prefix"] = _same_prefix(ours["_int8"], ours[""])
    if "hf" in results:
        report["same_greedy_prefix"] = _same_prefix(ours[""], results["hf"]["tokens"][-1])
    return report


def _same_prefix(a, b):
    """How many tokens two greedy outputs share before they first differ."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))


def print_report(report, args):
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores; {args.threads} threads; fp32 GEMM peak (n=1024): "
          + ", ".join(f"{LIBRARIES[w]} {report[f'{w}_gemm_gflops']:.0f} GFLOP/s"
                      for w in LIBRARIES if f"{w}_gemm_gflops" in report))
    print(f"GPT-2 124M ({report['n_params']:,} parameters), random weights; eval ids: "
          f"{report['eval_ids']}; medians of {args.rounds} rounds")
    print(f"{'':<36}{'tinyllm tok/s':>14}{'transformers':>14}{'ratio':>7}")
    for r in report["rows"]:
        hf = f"{r['hf']:.1f}" if "hf" in r else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        print(f"{r['what']:<36}{r['tinyllm']:>14.1f}{hf:>14}{ratio:>7}")
    if "same_greedy_prefix" in report:
        print(f"greedy tokens identical for the first {report['same_greedy_prefix']} of "
              f"{args.new_tokens}")
    print(f"compiled step's tokens equal the graph path's: {report['compiled_same_as_graph']}; "
          f"int8 weights: the first {report['int8_same_prefix']} of {args.new_tokens} equal")
    print(f"load average at the end: {report['load_average'][0]:.1f} (on {m['cores']} cores, "
          "other processes' work slows 2-thread runs far more than their share)")


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    libraries = ["tinyllm"] + (["hf"] if has_transformers(args.hf_python) else [])
    ids, ids_source = validation_ids(args)
    with tempfile.TemporaryDirectory() as tmp:
        n_params = write_model(tmp)
        np.save(Path(tmp) / "ids.npy", ids)
        results = collect(tmp, args, libraries)
    report = summarise(results, args, n_params, ids_source)
    print_report(report, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
