"""`tinyllm train`: pretrain a GPT, continue a run exactly (--resume), or start a new run from a
checkpoint's weights (--init: continued pretraining on new text).

    tinyllm train --preset shakespeare-char-cpu
    tinyllm train --resume --out-dir out                 # the very same run, continued
    tinyllm train --init out --data new.txt --out-dir out-more --max-iters 500
    mpiexec -n 4 tinyllm train --zero 1                  # 4 data-parallel ranks (distributed.py)
"""
import signal
import sys

import numpy as np

from tinyllm.checkpoint import tokenizer_bytes
from tinyllm.cli.common import Parser, compile_kernels, print_stream
from tinyllm.config import (PRESETS, SHAPE_FIELDS, add_config_flags, apply_overrides,
                            given_fields, preset)
from tinyllm.data.corpus import load_data
from tinyllm.distributed import connect
from tinyllm.generate import generate
from tinyllm.load import find_checkpoint, load_model
from tinyllm.run_dir import claim
from tinyllm.train import Pretraining, new_run, restore, train

DEFAULT_PRESET = "shakespeare-char-cpu"


def parser_for(prog, description, argv):
    """The parser of a training command, in two passes: the preset first, so --help shows
    that preset's values. Returns (parser, model config, train config)."""
    first = Parser(add_help=False)
    first.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                       help="a named configuration: see tinyllm/config.py")
    name = first.parse_known_args(argv)[0].preset
    model_cfg, train_cfg = preset(name)
    parser = Parser(prog=prog, description=description, parents=[first], conflict_handler="resolve")
    start = parser.add_argument_group("where the run starts")
    start.add_argument("--resume", action="store_true",
                       help="continue the run in --out-dir from its ckpt.npz, exactly")
    start.add_argument("--init", metavar="CHECKPOINT",
                       help="start a new run from these weights and tokenizer (a run folder, "
                            "checkpoint file or Hugging Face GPT-2 folder)")
    start.add_argument("--overwrite", action="store_true",
                       help="replace a run already in --out-dir (otherwise refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(parser, model_cfg, train_cfg)
    return parser, model_cfg, train_cfg


def main(argv):
    parser, model_cfg, train_cfg = parser_for(
        "tinyllm train", "Train a GPT on Tiny Shakespeare by character (default), on a text "
        "file (--data FILE) or on a folder of token files written by `tinyllm prepare` "
        "(--dataset DIR).", argv)
    parser.add_argument("--drop-unknown-chars", action="store_true",
                        help="with --init and a char model: drop characters of --data that "
                             "its tokenizer cannot encode (default: an error listing them)")
    parser.add_argument("--zero", type=int, default=0, choices=(0, 1),
                        help="under mpiexec: 1 splits AdamW's moments between the ranks "
                             "(ZeRO-1, 1/N of the optimizer's memory each), 0 copies them")
    args = parser.parse_args(argv)
    dist = connect(args.zero)  # one process, unless `mpiexec -n N` started N of us
    with dist.all_or_none():  # on N ranks, an error on one ends them all
        lock = None
        if dist.is_root:  # rank 0 alone holds the run folder and writes to it
            lock = claim(apply_overrides(train_cfg, args).out_dir, args.resume, args.overwrite)
        run, task = start_run(args, model_cfg, train_cfg)
        dist.prepare(run, task)
        _summary(run, task)
        compile_kernels(run.model.config)
        train(run, task, progress=not args.no_progress and dist.is_root)
    if lock is not None:
        lock.close()
    if run.stopped:
        sys.exit(128 + run.stopped)  # as a shell reports a process its signal ended
    if run.train_cfg.sample_tokens and dist.is_root:
        _closing_sample(run)


def start_run(args, model_cfg, train_cfg):
    """(run, task) for a fresh run, a resumed one (--resume) or one from weights (--init)."""
    train_cfg = apply_overrides(train_cfg, args)
    if args.resume and args.init:
        raise ValueError("--resume continues a run; --init starts a new one: choose one")
    shape_flags = sorted(set(given_fields(model_cfg, args)) & set(SHAPE_FIELDS))
    if (args.resume or args.init) and shape_flags:
        raise ValueError(f"{', '.join('--' + f.replace('_', '-') for f in shape_flags)} cannot "
                         "change the shape of an existing model (--resume / --init)")
    if args.resume:
        run = restore(find_checkpoint_in(train_cfg.out_dir), train_cfg.out_dir)
        run.train_cfg = apply_overrides(run.train_cfg, args)
        tokenizer, train_ids, val_ids = load_data(run.train_cfg, run.tokenizer)
        if tokenizer_bytes(tokenizer) != tokenizer_bytes(run.tokenizer):
            raise ValueError("the data's tokenizer differs from the checkpoint's")
        return run, Pretraining(train_ids, val_ids)
    tokenizer = weights = None
    model_cfg = apply_overrides(model_cfg, args)
    if args.init:  # the checkpoint's shape and weights; flags may change only e.g. dropout
        model, tokenizer, _ = load_model(args.init)
        model_cfg = apply_overrides(model.config, args)
        weights = model.state_dict()
    tokenizer, train_ids, val_ids = load_data(train_cfg, tokenizer, args.drop_unknown_chars)
    return new_run(model_cfg, train_cfg, tokenizer, weights), Pretraining(train_ids, val_ids)


def find_checkpoint_in(out_dir):
    path = find_checkpoint(out_dir)
    return path.parent / "ckpt.npz" if (path.parent / "ckpt.npz").is_file() else path


def _summary(run, task):
    m = run.model
    print(f"model: {m.num_params() / 1e6:.2f}M parameters, {m.config}")
    print(f"data: {len(task.train_ids):,} train / {len(task.val_ids):,} val tokens, "
          f"vocabulary {run.tokenizer.vocab_size}; from step {run.step} to "
          f"{run.train_cfg.max_iters}, writing to {run.train_cfg.out_dir}/")
    if run.dist.size > 1:
        cfg = run.train_cfg
        print(f"data parallel: {run.dist.size} ranks x {cfg.grad_accum} micro-batches of "
              f"{cfg.batch_size} sequences = {run.dist.size * cfg.grad_accum * cfg.batch_size} "
              f"a step ({type(run.dist).__name__})")


def _closing_sample(run):
    """Print sample_tokens tokens from the trained model, after a newline."""
    print("\n--- sample ---")
    idx = np.array([run.tokenizer.encode("\n")])  # (1, 1)
    tokens = generate(run.model, idx, run.train_cfg.sample_tokens, 0.8, 200,
                      rng=np.random.default_rng(run.train_cfg.seed))
    print_stream(run.tokenizer, "\n", tokens)
