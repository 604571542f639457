"""What int8 weights cost in quality: validation loss and greedy agreement of a model against
its own int8 copy (tinyllm/quantize.py), measured rather than assumed.

    python benchmarks/quantize.py --checkpoint out/target-char2 [--tokens 1000] [--text FILE]
                                  [--max-eval-tokens N] [--prompt "ROMEO:"]

The checkpoint is loaded twice and one copy quantized. Reported:
- loss: the mean validation loss in nats per token of each (one full sliding-window pass, as
  `tinyllm eval` scores: tinyllm.evaluate.perplexity) on the run's validation split, or on
  --text; and their difference (the target: within 0.01 nats per token);
- teacher-forced agreement: along the first --tokens tokens of that text, read in disjoint
  block_size windows, the fraction of positions where both models rank the same next token
  first (each position sees the same context in both);
- free-running agreement: both decode --tokens tokens greedily from --prompt; the tokens
  they share before their first difference, and the fraction of equal positions (after a
  difference the two continue different texts, so this fraction mostly measures luck).
Speed is benchmarks/generate.py's and benchmarks/gpt2.py's business. Prints the machine and
the figures; writes benchmarks/results/quantize.json.
"""
import argparse
import json
import os
import sys
from pathlib import Path

# before NumPy loads OpenBLAS, as the `tinyllm` command does (autograd/kernels/threads.py)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import header  # noqa: E402  (a sibling script, found via HERE)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a run folder, a checkpoint file or a Hugging Face GPT-2 folder")
    parser.add_argument("--text", help="evaluate on this text file (default: the run's "
                                       "validation split)")
    parser.add_argument("--tokens", type=int, default=1000,
                        help="tokens compared for greedy agreement (default 1000)")
    parser.add_argument("--max-eval-tokens", type=int, default=None,
                        help="score only the first N tokens of the text (default: all)")
    parser.add_argument("--prompt", default="\n", help="the free-running decodes' prompt")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--out", default=str(HERE / "results" / "quantize.json"))
    return parser.parse_args()


def eval_ids(args, tokenizer, meta):
    """(ids (N,), what they are): --text's, else the run's validation split."""
    from tinyllm.data.corpus import read_text
    from tinyllm.data.token_files import encoder
    from tinyllm.evaluate import run_val_ids

    if args.text:
        return np.asarray(encoder(tokenizer)(read_text(Path(args.text)))), args.text
    return np.asarray(run_val_ids(meta.get("train_config"), tokenizer)), "validation split"


def first_choices(model, ids):
    """The most likely next token (n,) after each of ids (n,), disjoint block_size windows."""
    from autograd import no_grad

    T = model.config.block_size
    choices = []
    with no_grad():
        for start in range(0, len(ids), T):
            logits, _ = model(ids[None, start:start + T].astype(np.int64))  # (1, <= T, V)
            choices.append(logits.data[0].argmax(axis=-1))
    return np.concatenate(choices)  # (n,)


def greedy(model, prompt, n):
    """n greedy tokens (n,) after prompt (1, T)."""
    from tinyllm.generate import generate

    return np.array([int(t[0]) for t in generate(model, prompt, n, temperature=0)])


def compare(args):
    from tinyllm.evaluate import perplexity
    from tinyllm.load import load_model
    from tinyllm.quantize import quantize_model

    model, tokenizer, meta = load_model(args.checkpoint)
    int8 = quantize_model(load_model(args.checkpoint)[0])
    ids, source = eval_ids(args, tokenizer, meta)
    ids = ids[:args.max_eval_tokens]
    prompt = np.array([tokenizer.encode(args.prompt)])  # (1, T)
    report = {"checkpoint": args.checkpoint, "eval_text": source, "eval_tokens": len(ids) - 1}
    choices, decodes = {}, {}
    for name, m in (("float32", model), ("int8", int8)):
        report[f"{name}_loss"] = perplexity(m, tokenizer, ids).mean_loss
        choices[name] = first_choices(m, ids[:args.tokens])
        decodes[name] = greedy(m, prompt, args.tokens)
    report["loss_increase"] = report["int8_loss"] - report["float32_loss"]
    report["teacher_forced_agreement"] = float(np.mean(choices["float32"] == choices["int8"]))
    equal = decodes["float32"] == decodes["int8"]  # (tokens,)
    report["free_running_same_prefix"] = int(np.argmin(equal)) if not equal.all() else len(equal)
    report["free_running_agreement"] = float(equal.mean())
    return report


def main():
    args = parse_args()
    from autograd.kernels import numba_support, tune_process

    tune_process(args.threads)  # as the `tinyllm` command does
    line, machine = header(numba_support.threads())  # GEMM peak under the same thread count
    print(line)
    report = dict(compare(args), machine=machine)
    print(f"{args.checkpoint}: {report['eval_tokens']:,} tokens of the {report['eval_text']}")
    print(f"loss (nats/token): float32 {report['float32_loss']:.4f}, int8 "
          f"{report['int8_loss']:.4f}, increase {report['loss_increase']:+.4f} (target <= 0.01)")
    print(f"greedy agreement over {args.tokens} tokens: teacher-forced "
          f"{report['teacher_forced_agreement']:.3f}; free-running: the first "
          f"{report['free_running_same_prefix']} equal, {report['free_running_agreement']:.3f}"
          f" of positions")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(report, command=" ".join(["python"] + sys.argv)),
                                         indent=1))


if __name__ == "__main__":
    main()
