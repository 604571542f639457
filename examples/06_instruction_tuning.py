"""Instruction tuning end to end on a CPU: pretrain a small BPE GPT, fine-tune it to follow
instructions (SFT, all weights or LoRA), preference-tune it (DPO), and read what it answers.

Every step runs the `tinyllm` command as a user would type it (the commands are printed), and
every figure is measured on examples that step never trained on: the instruction data is split
85/5/10 into train, validation and test (tinyllm/finetune/data.py), and the preference data
splits alike, so DPO's held-out pairs are SFT's held-out instructions.

1. Pretraining. Tiny Shakespeare alone teaches a model Elizabethan verse; the instructions ask
   for modern English ("Rewrite the sentence...", "What is the capital of..."). So the corpus
   is Shakespeare's speeches plus the *training* split of the instruction data written as plain
   documents (instruction, input and output separated by blank lines, no template), shuffled
   together; the validation and test instructions are never in it. The BPE vocabulary (2048
   ids, <|endoftext|> last) is trained by `tinyllm prepare` on the same corpus, which shortens
   the instruction text (about 103 tokens an example instead of 113 with a Shakespeare-only
   vocabulary), so every example fits in a 256-token block (the report counts any that are
   cut). The template is left out of pretraining on purpose: the base model knows the words
   but has never seen "### Response:", so the answers it gives after SFT are SFT's doing.
2. SFT from the pretrained model, and from a random model of the same shape, for the same
   steps (at pretraining's learning rate, its best chance): the response loss on the
   validation and test instructions says whether pretraining helps.
3. Full fine-tuning against LoRA (rank 8 on c_attn and every c_proj: attention's qkv and
   output, the MLP's output) from the same base: loss, wall time, trained parameters, and
   peak memory (RSS).
4. DPO from the SFT model. At step 0 the policy is its own reference, so every implicit reward
   is 0 (accuracy 0, margin 0); what changes is read from the validation log and the test
   split, plus a figure that exists before DPO too: the share of held-out pairs whose chosen
   answer the model finds more likely than the rejected one.
5. Greedy answers to three test instructions from the base model (a continuation of the
   prompt), the SFT model and the DPO model, whatever they look like at this scale.

How the settings were chosen (two shared cores, another job running; val = the held-out
split). The budget buys a few million tokens, far fewer than a 2M-parameter model could use,
so a smaller model that reads more text wins: at equal compute (300 steps of 4 x 192 channels
against 600 steps of 4 x 128, batch 8 x 256 tokens, learning rate 2e-3) the smaller reached
4.46 nats/token in pretraining against 4.70, and 4.36 against 4.54 after 150 SFT steps. From
that 600-step base, 400 SFT steps at 1e-3 reached 3.85 (3e-4: 4.06; 2e-3: 3.88); LoRA at
1e-2 reached 4.29 (5e-3: 4.32; 2e-3: 4.42; adding c_fc at 5e-3: 4.25); SFT from random weights
at 2e-3 reached 4.37; DPO at 1e-4 reached a val reward accuracy of 0.89, margin 1.03 (2e-5:
0.82, 0.31).

One run of the defaults (24.7 minutes on two cores shared with other jobs, 14.4 of them
pretraining 1.09M parameters on 3.1M tokens): the base model scores 3.99 nats/token (2.03
bits/byte) on its held-out documents. The response loss on the validation / test instructions
is 4.42 / 4.23 before SFT, 3.53 / 3.25 after it, 4.37 / 4.21 after SFT from random weights, and
3.73 / 3.46 with LoRA, which trains 45,056 parameters instead of 1,088,256, in 126 s of
training against 154 s, at a peak RSS of 286 MB against 259 MB: at this size the weights,
gradients and AdamW moments are ~17 MB of the process, so the moments LoRA saves are hidden by
the activations it adds (at GPT-2's 124M the moments alone are 1 GB). DPO takes the val reward
accuracy from 0 to 0.80 (margin 1.39; test 0.87), yet the share of pairs whose chosen answer is
the likelier stays 0.60: it lowers the rejected answers more than the chosen ones (rewards -1.83
and -0.44). The answers have the shape of the references and little of their content ("What is
the atomic number of helium?" -> "The cal of the circle is 4.").

Peak memory is each child process's own maximum resident set, from os.wait4 (which reports the
waited-for child alone; RUSAGE_CHILDREN would give the maximum over every child so far).

    python examples/06_instruction_tuning.py [--out out/recipe] [--quick] [--sft-iters 300]

--quick shrinks everything (a tiny model, a few steps) to check that the recipe runs.
"""
import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# before NumPy loads OpenBLAS, as the `tinyllm` command does (autograd/kernels/threads.py)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import numpy as np  # noqa: E402

from autograd import no_grad  # noqa: E402
from autograd.kernels import tune_process  # noqa: E402
from tinyllm.checkpoint import save_checkpoint  # noqa: E402
from tinyllm.config import add_config_flags, apply_overrides  # noqa: E402
from tinyllm.data.download import shakespeare_path  # noqa: E402
from tinyllm.data.sources import block_documents  # noqa: E402
from tinyllm.finetune.chat import respond  # noqa: E402
from tinyllm.finetune.data import load_instructions, load_preferences, split  # noqa: E402
from tinyllm.finetune.dpo import DPOTask  # noqa: E402
from tinyllm.finetune.lora import LoRASpec  # noqa: E402
from tinyllm.finetune.sft import SFTTask, encode_examples  # noqa: E402
from tinyllm.load import load_model  # noqa: E402
from tinyllm.model import GPT  # noqa: E402


@dataclass
class Recipe:
    vocab_size: int = 2048  # BPE vocabulary, <|endoftext|> included
    n_layer: int = 4  # transformer blocks of the base model
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # channels of the residual stream
    block_size: int = 256  # context length: every instruction example fits
    pretrain_iters: int = 1500  # pretraining steps
    pretrain_batch: int = 8  # pretraining sequences per step
    pretrain_lr: float = 2e-3  # pretraining peak learning rate (cosine to a tenth)
    eval_iters: int = 20  # pretraining: batches per evaluation of the log
    sft_iters: int = 400  # SFT steps (each run)
    sft_lr: float = 1e-3  # SFT learning rate, from the pretrained model
    scratch_lr: float = 2e-3  # SFT learning rate from a random model (pretraining's)
    lora_rank: int = 8  # LoRA's rank r
    lora_targets: str = "c_attn,c_proj"  # the Linears LoRA adapts
    lora_lr: float = 1e-2  # LoRA's learning rate
    dpo_iters: int = 150  # DPO steps
    dpo_lr: float = 1e-4  # DPO learning rate
    dpo_beta: float = 0.1  # DPO's beta: the pull towards the reference
    batch_size: int = 8  # SFT and DPO examples (pairs) per step
    eval_interval: int = 50  # SFT and DPO: steps between evaluations
    max_new_tokens: int = 64  # tokens of each sample answer at most
    seed: int = 1337  # seeds the corpus's shuffle and every run


QUICK = Recipe(vocab_size=512, n_layer=1, n_head=2, n_embd=32, pretrain_iters=20,
               pretrain_batch=4, eval_iters=2, sft_iters=6, lora_rank=2, dpo_iters=4,
               batch_size=4, eval_interval=3, max_new_tokens=8)


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", default="out/recipe", help="the folder of every run and the "
                                                            "report (default out/recipe)")
    parser.add_argument("--quick", action="store_true", help="a tiny model, a few steps")
    add_config_flags(parser, Recipe())
    args = parser.parse_args()
    recipe = apply_overrides(QUICK if args.quick else Recipe(), args)
    tune_process()  # this process evaluates and samples: idle kernel threads must sleep
    out = Path(args.out)
    tick = time.perf_counter()
    report = {"settings": dataclasses.asdict(recipe)}
    report["pretrain"] = pretrain(recipe, out)
    splits = split(load_instructions())
    report["data"] = fit_report(out / "base", splits, recipe.block_size)
    report["sft"] = compare_sft(recipe, out, splits)
    report["dpo"] = preference_tune(recipe, out)
    report["samples"] = samples(recipe, out, splits)
    report["total_wall_s"] = round(time.perf_counter() - tick, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print_report(report, out)
    print_gpt2_commands()


# --- running the command ---

def tinyllm(*args, capture=False):
    """Run `python -m tinyllm.cli ARGS` as a child process. Returns {"command", "wall_s",
    "peak_rss_mb", "stdout" (with capture, else its output goes to ours)}."""
    command = ["tinyllm", *(f"{a:g}" if isinstance(a, float) else str(a) for a in args)]
    print(f"\n$ {shlex.join(command)}", flush=True)
    tick = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "tinyllm.cli", *command[1:]],
                             stdout=subprocess.PIPE if capture else None, text=True)
    stdout = child.stdout.read() if capture else None  # drain first: a full pipe would block
    # wait4 reaps this child and returns its own resource use (kilobytes on Linux, bytes on
    # macOS); RUSAGE_CHILDREN would be the maximum over every child reaped so far
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"`{shlex.join(command)}` failed with exit code {child.returncode}")
    kb = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return {"command": shlex.join(command), "wall_s": round(time.perf_counter() - tick, 1),
            "peak_rss_mb": round(kb / 1024, 1), "stdout": stdout}


def last_records(run_dir):
    """The first, the best (lowest val_loss: the model best.npz holds) and the last record of
    a run's log.jsonl."""
    records = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    return records[0], min(records, key=lambda r: r["val_loss"]), records[-1]


# --- 1. pretraining ---

def pretrain(recipe, out):
    """Write the corpus, prepare BPE token files, pretrain, and score the whole validation
    split once (`tinyllm eval`)."""
    counts = write_corpus(out / "pretrain.jsonl", recipe.seed)
    prepared = tinyllm("prepare", out / "pretrain.jsonl", out / "data", "--tokenizer",
                       f"bpe:{recipe.vocab_size}", "--quiet")
    r = recipe
    trained = tinyllm(
        "train", "--dataset", out / "data", "--out-dir", out / "base", "--overwrite",
        "--n-layer", r.n_layer, "--n-head", r.n_head, "--n-embd", r.n_embd,
        "--block-size", r.block_size, "--batch-size", r.pretrain_batch,
        "--max-iters", r.pretrain_iters, "--lr-decay-iters", r.pretrain_iters,
        "--learning-rate", r.pretrain_lr, "--min-lr", r.pretrain_lr / 10,
        "--warmup-iters", max(r.pretrain_iters // 20, 1), "--eval-iters", r.eval_iters,
        "--eval-interval", max(r.pretrain_iters // 4, 1), "--seed", r.seed,
        "--sample-tokens", 0, "--no-progress")
    scored = tinyllm("eval", "--checkpoint", out / "base", "--json", "--no-progress",
                     capture=True)
    full_pass = json.loads(scored.pop("stdout"))
    _, best, last = last_records(out / "base")
    return {"documents": counts, "prepare": without_stdout(prepared),
            "train": without_stdout(trained), "params": load_model(out / "base")[0].num_params(),
            "tokens_trained": last["tokens"], "train_s": last["elapsed_s"],
            "log_val_loss": best["val_loss"], "eval": scored, "val_loss": full_pass["mean_loss"],
            "val_bits_per_byte": full_pass["bits_per_byte"]}


def write_corpus(path, seed):
    """Shakespeare's speeches and the training instructions as plain documents, shuffled, as
    JSON Lines (one {"text": ...} a line, what `tinyllm prepare` reads). `prepare` holds out
    the last 10% of the documents for validation: a mix of both sources."""
    speeches = list(block_documents(shakespeare_path()))
    instructions = [plain_document(ex) for ex in split(load_instructions()).train]
    documents = speeches + instructions
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in np.random.default_rng(seed).permutation(len(documents)):
            f.write(json.dumps({"text": documents[i]}) + "\n")
    return {"shakespeare": len(speeches), "instructions": len(instructions)}


def plain_document(example):
    """An instruction example as ordinary text: its parts separated by blank lines."""
    return "\n\n".join(part for part in (example.instruction, example.input, example.output)
                       if part)


def fit_report(base, splits, block_size):
    """How long the examples are in the base model's tokens, and how many SFT would cut."""
    tokenizer = load_model(base)[1]
    lengths = {name: [len(p) + len(r) for p, r in encode_examples(tokenizer, examples)]
               for name, examples in vars(splits).items()}
    return {"longest_example_tokens": max(max(n) for n in lengths.values()),
            "mean_example_tokens": round(float(np.mean(lengths["train"])), 1),
            "examples_cut": {name: sum(n > block_size + 1 for n in ns)
                             for name, ns in lengths.items()}}


# --- 2 and 3. SFT: pretrained or random start, all weights or LoRA ---

def compare_sft(recipe, out, splits):
    """The three SFT runs, each scored on the validation and test instructions, next to the
    base model before any SFT."""
    write_random_model(out / "base", out / "random.npz", recipe.seed)
    r = recipe
    lora = ("--lora-rank", r.lora_rank, "--lora-targets", r.lora_targets)
    runs = {"base": (out / "base", r.sft_lr, ()), "scratch": (out / "random.npz", r.scratch_lr, ()),
            "lora": (out / "base", r.lora_lr, lora)}  # name: (start, learning rate, flags)
    model, tokenizer, _ = load_model(out / "base")  # every run shares its tokenizer
    task = SFTTask(tokenizer, splits, recipe.block_size, recipe.batch_size)
    results = {"before_sft": sft_scores(model, task)}
    for name, (init, lr, flags) in runs.items():
        run_dir = out / f"sft-{name}"
        done = tinyllm("sft", "--init", init, "--out-dir", run_dir, "--overwrite", *flags,
                       "--learning-rate", lr, "--min-lr", lr / 10, "--max-iters", r.sft_iters,
                       "--lr-decay-iters", r.sft_iters, "--warmup-iters", max(r.sft_iters // 20, 1),
                       "--batch-size", r.batch_size, "--eval-interval", r.eval_interval,
                       "--seed", r.seed, "--no-progress")
        results[name] = {**without_stdout(done), "train_s": last_records(run_dir)[2]["elapsed_s"],
                         "trained_params": trained_params(out / "base", recipe, bool(flags)),
                         **sft_scores(load_model(run_dir)[0], task)}
    return results


def write_random_model(base, path, seed):
    """A freshly initialised model of the base model's shape and tokenizer, as a checkpoint
    (what `tinyllm sft --init` takes)."""
    model, tokenizer, _ = load_model(base)
    fresh = GPT(model.config, np.random.default_rng(seed))
    save_checkpoint(path, fresh.state_dict(), {},
                    {"model_config": dataclasses.asdict(model.config)}, tokenizer)


def sft_scores(model, task):
    """{"val_loss", "test_loss"}: the mean loss over every response token of each split."""
    return {**task.evaluate_split(model, "val"), **task.evaluate_split(model, "test")}


def trained_params(base, recipe, lora):
    """How many parameters a run trains: all of them, or LoRA's adapters alone."""
    model = load_model(base)[0]
    if lora:
        spec = LoRASpec(recipe.lora_rank, targets=tuple(recipe.lora_targets.split(",")))
        spec.adapt(model, np.random.default_rng(0))
    return sum(p.size for p in model.parameters() if p.requires_grad)


# --- 4. DPO ---

def preference_tune(recipe, out):
    """DPO from the SFT model; its rewards on held-out pairs at step 0 and after, and the
    share of pairs whose chosen answer each model prefers."""
    r = recipe
    done = tinyllm("dpo", "--init", out / "sft-base", "--out-dir", out / "dpo", "--overwrite",
                   "--beta", r.dpo_beta, "--learning-rate", r.dpo_lr, "--min-lr", r.dpo_lr / 10,
                   "--max-iters", r.dpo_iters, "--lr-decay-iters", r.dpo_iters,
                   "--warmup-iters", max(r.dpo_iters // 20, 1), "--batch-size", r.batch_size,
                   "--eval-interval", r.eval_interval, "--seed", r.seed, "--no-progress")
    first, best, last = last_records(out / "dpo")
    keys = ("val_loss", "val_reward_accuracy", "val_margin", "val_chosen_reward",
            "val_rejected_reward")
    return {**without_stdout(done), "train_s": last["elapsed_s"],
            "before": {k: first[k] for k in keys}, "after": {k: best[k] for k in keys},
            "after_step": best["iter"], **held_out_preferences(recipe, out)}


def held_out_preferences(recipe, out):
    """The DPO model's rewards on the test pairs, how many pairs the block cuts, and the share
    of validation pairs whose chosen answer the SFT and the DPO model each prefer."""
    reference, tokenizer, _ = load_model(out / "sft-base")
    policy = load_model(out / "dpo")[0]
    task = DPOTask(reference, tokenizer, split(load_preferences()), recipe.block_size,
                   recipe.batch_size, recipe.dpo_beta)
    cut = sum(len(prompt) + max(len(chosen), len(rejected)) > recipe.block_size + 1
              for triples in task.splits.values() for prompt, chosen, rejected in triples)
    return {"test_after": task.evaluate_split(policy, "test"), "pairs_cut": cut,
            "val_prefers_chosen_before": prefers_chosen(reference, task),
            "val_prefers_chosen_after": prefers_chosen(policy, task)}


def prefers_chosen(model, task, split_name="val"):
    """The share of the split's pairs to whose chosen answer `model` gives a higher
    log-probability than to the rejected one (no reference involved)."""
    pairs, wins = task.splits[split_name], 0
    model.eval()
    for start in range(0, len(pairs), task.batch_size):
        with no_grad():
            logps = task.pair_logps(model, *task.make_batch(pairs[start:start + task.batch_size]))
        wins += int(np.count_nonzero(logps.data[:, 0] > logps.data[:, 1]))  # (B, 2) -> count
    return wins / len(pairs)


# --- 5. samples ---

def samples(recipe, out, splits, n=3):
    """Greedy answers of the base, SFT and DPO models to the first n test instructions that
    have no input (what `tinyllm chat --prompt ... --temperature 0` prints)."""
    examples = [ex for ex in splits.test if not ex.input][:n]
    models = {name: load_model(out / folder)[:2]
              for name, folder in (("base", "base"), ("sft", "sft-base"), ("dpo", "dpo"))}
    return [{"instruction": ex.instruction, "reference": ex.output,
             **{name: "".join(respond(model, tokenizer, [], ex.instruction,
                                      recipe.max_new_tokens, temperature=0))
                for name, (model, tokenizer) in models.items()}}
            for ex in examples]


# --- the report ---

def without_stdout(result):
    return {k: v for k, v in result.items() if k != "stdout"}


def print_report(report, out):
    p, s, d = report["pretrain"], report["sft"], report["dpo"]
    print(f"\n=== report (also {out / 'report.json'}) ===")
    print(f"1. base: {p['params']:,} parameters, {p['tokens_trained']:,} tokens in "
          f"{p['train_s']:.0f} s; held-out loss {p['val_loss']:.4f} nats/token "
          f"({p['val_bits_per_byte']:.3f} bits/byte); examples cut at block_size: "
          f"{report['data']['examples_cut']}")
    print("2-3. SFT response loss (val / test):")
    print(f"  {'before SFT':<22} {s['before_sft']['val_loss']:.4f} / "
          f"{s['before_sft']['test_loss']:.4f}")
    for name, label in (("base", "SFT from pretrained"), ("scratch", "SFT from random init"),
                        ("lora", "LoRA from pretrained")):
        r = s[name]
        print(f"  {label:<22} {r['val_loss']:.4f} / {r['test_loss']:.4f}   "
              f"{r['trained_params']:>9,} trained, {r['train_s']:6.1f} s training "
              f"({r['wall_s']:.0f} s wall), peak RSS {r['peak_rss_mb']:.0f} MB")
    b, a = d["before"], d["after"]
    print(f"4. DPO (val, step 0 -> step {d['after_step']}): reward accuracy "
          f"{b['val_reward_accuracy']:.3f} -> {a['val_reward_accuracy']:.3f}, margin "
          f"{b['val_margin']:.4f} -> {a['val_margin']:.4f}, loss {b['val_loss']:.4f} -> "
          f"{a['val_loss']:.4f}; test reward accuracy "
          f"{d['test_after']['test_reward_accuracy']:.3f}; chosen answer more likely: "
          f"{d['val_prefers_chosen_before']:.3f} -> {d['val_prefers_chosen_after']:.3f}")
    print(f"5. greedy answers to test instructions, as `tinyllm chat --checkpoint {out}/sft-base "
          f"--prompt INSTRUCTION --temperature 0 --max-new-tokens "
          f"{report['settings']['max_new_tokens']}` prints them (base, sft-base, dpo):")
    for sample in report["samples"]:
        print(f"  > {sample['instruction']}\n    reference: {sample['reference']!r}")
        for name in ("base", "sft", "dpo"):
            print(f"    {name:<9}  {sample[name]!r}")
    print(f"total wall time {report['total_wall_s']:.0f} s")


def print_gpt2_commands():
    """The same path from OpenAI's GPT-2 (124M) for a machine that has it (not run here): its
    tokenizer ends documents with <|endoftext|> too, and it needs smaller learning rates."""
    print("\nThe same from GPT-2 (`tinyllm download gpt2` once, then):")
    for line in (
            "tinyllm sft --init gpt2 --out-dir out/gpt2-sft --batch-size 4 --learning-rate 5e-5",
            "tinyllm sft --init gpt2 --out-dir out/gpt2-lora --batch-size 4 --lora-rank 8 "
            "--lora-targets c_attn,c_proj --learning-rate 5e-4",
            "tinyllm dpo --init out/gpt2-sft --out-dir out/gpt2-dpo --batch-size 4 --beta 0.1",
            "tinyllm chat --checkpoint out/gpt2-dpo --prompt 'Name three primary colours.' "
            "--temperature 0"):
        print(f"  {line}")


if __name__ == "__main__":
    main()
