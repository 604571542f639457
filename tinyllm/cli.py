"""The `tinyllm` command: `tinyllm train` and `tinyllm sample`.

    tinyllm train --preset shakespeare-char-cpu            # ~0.8M parameters, minutes on a CPU
    tinyllm train --preset shakespeare-char --n_layer 8    # any config field is a flag
    tinyllm train --resume --out_dir out                   # continue exactly where it stopped
    tinyllm sample --checkpoint out --prompt "ROMEO:" --max-new-tokens 500
    tinyllm sample --checkpoint out --draft out-small --temperature 0   # speculative decoding
    tinyllm prepare corpus.jsonl data/corpus --tokenizer bpe:4096 --dedup --near-dup 0.8
    tinyllm train --dataset data/corpus                    # train on prepared token files
"""
import argparse
import codecs
import sys
from pathlib import Path

import numpy as np

from tinyllm.checkpoint import load_checkpoint, tokenizer_bytes
from tinyllm.config import GPTConfig, PRESETS, add_config_flags, apply_overrides, preset
from tinyllm.data.pipeline import prepare
from tinyllm.generate import generate
from tinyllm.model import GPT
from tinyllm.speculative import speculative_generate
from tinyllm.train import TrainingDiverged, load_data, new_run, restore, train

DEFAULT_PRESET = "shakespeare-char-cpu"


def train_command(argv):
    """Parse in two passes: the preset first, so --help shows that preset's values."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS))
    name = first.parse_known_args(argv)[0].preset
    model_cfg, train_cfg = preset(name)
    parser = argparse.ArgumentParser(
        prog="tinyllm train", parents=[first],
        description="Train a character-level GPT on Tiny Shakespeare (or --data FILE).")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT_DIR/ckpt.npz (flags given override its settings)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser, model_cfg, train_cfg)
    args = parser.parse_args(argv)
    train_cfg = apply_overrides(train_cfg, args)
    if args.resume:
        run = restore(Path(train_cfg.out_dir) / "ckpt.npz")
        run.train_cfg = apply_overrides(run.train_cfg, args)
        tokenizer, train_ids, val_ids = load_data(run.train_cfg)
        if tokenizer_bytes(tokenizer) != tokenizer_bytes(run.tokenizer):
            sys.exit("error: the data's tokenizer differs from the checkpoint's")
    else:
        tokenizer, train_ids, val_ids = load_data(train_cfg)
        run = new_run(apply_overrides(model_cfg, args), train_cfg, tokenizer)
    _summary(run, train_ids, val_ids)
    try:
        train(run, train_ids, val_ids, progress=not args.no_progress)
    except TrainingDiverged as e:
        sys.exit(f"error: {e}")
    if run.train_cfg.sample_tokens:
        print("\n--- sample ---")
        _stream(run.model, run.tokenizer, "\n", run.train_cfg.sample_tokens, 0.8, 200,
                np.random.default_rng(run.train_cfg.seed))


def _summary(run, train_ids, val_ids):
    m = run.model
    print(f"model: {m.num_params() / 1e6:.2f}M parameters, {m.config}")
    print(f"data: {len(train_ids):,} train / {len(val_ids):,} val tokens, "
          f"vocabulary {run.tokenizer.vocab_size}; from step {run.step} to "
          f"{run.train_cfg.max_iters}, writing to {run.train_cfg.out_dir}/")


def sample_command(argv):
    parser = argparse.ArgumentParser(prog="tinyllm sample",
                                     description="Generate text from a trained checkpoint.")
    parser.add_argument("--checkpoint", default="out",
                        help="a checkpoint file, or a directory holding best.npz or ckpt.npz")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=500)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 for greedy")
    parser.add_argument("--top-k", type=int, default=200, help="sample among the k most likely")
    parser.add_argument("--top-p", type=float, default=None,
                        help="sample among the most likely tokens holding this much probability")
    parser.add_argument("--no-cache", action="store_true",
                        help="rerun the whole context every step (slow; for comparison)")
    parser.add_argument("--draft", metavar="CHECKPOINT", default=None,
                        help="a small model of the same tokenizer: speculative decoding")
    parser.add_argument("--num-samples", type=int, default=1, help="samples, one after another")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args(argv)
    if args.draft and args.no_cache:
        parser.error("--draft decodes with KV caches; it cannot be combined with --no-cache")
    model, tokenizer = _load_model(args.checkpoint)
    draft = _load_draft(args.draft, tokenizer)
    rng = np.random.default_rng(args.seed)
    idx = np.array([tokenizer.encode(args.prompt)])  # (1, T)
    for i in range(args.num_samples):
        if i:
            print("---------------")
        _print_stream(tokenizer, args.prompt, _new_tokens(args, model, draft, idx, rng))


def _new_tokens(args, model, draft, idx, rng):
    """The generator the flags ask for: cached (or, --no-cache, plain) sampling, or speculative
    decoding with --draft; both yield the same (1,) arrays."""
    if draft is None:
        return generate(model, idx, args.max_new_tokens, args.temperature, args.top_k,
                        args.top_p, rng, use_cache=not args.no_cache)
    return speculative_generate(model, draft, idx, args.max_new_tokens,
                                temperature=args.temperature, top_k=args.top_k,
                                top_p=args.top_p, rng=rng)


def _load_model(path):
    """(model, tokenizer) from a checkpoint file or directory."""
    model_state, _, meta, tokenizer = load_checkpoint(_checkpoint_file(path))
    model = GPT(GPTConfig(**meta["model_config"]))
    model.load_state_dict(model_state)
    return model, tokenizer


def _load_draft(path, tokenizer):
    """The draft model for --draft, or None; it must share the target's tokenizer."""
    if path is None:
        return None
    draft, draft_tokenizer = _load_model(path)
    if tokenizer_bytes(draft_tokenizer) != tokenizer_bytes(tokenizer):
        sys.exit("error: the draft's tokenizer differs from the target's")
    return draft


def _checkpoint_file(path):
    path = Path(path)
    for candidate in (path, path / "best.npz", path / "ckpt.npz"):
        if candidate.is_file():
            return candidate
    sys.exit(f"error: no checkpoint at {path} (expected a .npz file or a directory holding "
             "best.npz or ckpt.npz; train one with `tinyllm train`)")


def _stream(model, tokenizer, prompt, n, temperature, top_k, rng):
    """Print the prompt and n sampled tokens as they come (`tinyllm train`'s closing sample)."""
    idx = np.array([tokenizer.encode(prompt)])  # (1, T)
    _print_stream(tokenizer, prompt, generate(model, idx, n, temperature, top_k, rng=rng))


def _print_stream(tokenizer, prompt, tokens):
    """Print the prompt, then each token of `tokens` ((1,) arrays) as soon as it is sampled. A
    byte-level token may end inside a UTF-8 character, so bytes go through an incremental
    decoder, which holds a partial character back until the token that completes it."""
    print(prompt, end="", flush=True)
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in tokens:
        if hasattr(tokenizer, "decode_bytes"):
            text = utf8.decode(tokenizer.decode_bytes([int(token[0])]))
        else:
            text = tokenizer.decode([int(token[0])])
        print(text, end="", flush=True)
    print(utf8.decode(b"", final=True))


def prepare_command(argv):
    parser = argparse.ArgumentParser(
        prog="tinyllm prepare",
        description="Clean, deduplicate, filter and tokenize text into train.bin / val.bin.")
    parser.add_argument("src", help="a text file, a directory of .txt files, or .jsonl (text)")
    parser.add_argument("out", help="the output directory")
    parser.add_argument("--tokenizer", default="char",
                        help="char | bpe:VOCAB (trained on the kept text) | PATH of a saved one")
    parser.add_argument("--dedup", action="store_true", help="drop exact duplicate documents")
    parser.add_argument("--dedup-lines", action="store_true", help="drop lines seen before")
    parser.add_argument("--quality", action="store_true", help="apply the Gopher quality rules")
    parser.add_argument("--near-dup", type=float, nargs="?", const=0.8, default=None,
                        metavar="JACCARD", help="drop near duplicates (MinHash; default 0.8)")
    parser.add_argument("--num-perm", type=int, default=128, help="MinHash permutations")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    meta = prepare(args.src, args.out, args.tokenizer, dedup=args.dedup,
                   dedup_lines=args.dedup_lines, quality=args.quality or None,
                   near_dup=args.near_dup, num_perm=args.num_perm,
                   val_fraction=args.val_fraction, progress=not args.quiet)
    print(f"wrote {args.out}/: vocabulary {meta['vocab_size']}, dtype {meta['dtype']}; "
          f"report in {args.out}/report.json")


COMMANDS = {"train": train_command, "sample": sample_command, "prepare": prepare_command}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip() + "\n\ncommands: " + ", ".join(COMMANDS), file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
