"""`tinyllm train`: pretrain a GPT, continue a run exactly (--resume), or start a new run from a
checkpoint's weights (--init: continued pretraining on new text).

    tinyllm train --preset shakespeare-char-cpu
    tinyllm train --resume --out-dir out                 # the very same run, continued
    tinyllm train --init out --data new.txt --out-dir out-more --max-iters 500
    mpiexec -n 4 tinyllm train --zero 1                  # 4 data-parallel ranks (distributed.py)
"""
import numpy as np

from tinyllm.checkpoint import tokenizer_bytes
from tinyllm.cli.common import Parser, print_stream
from tinyllm.cli.training import add_start_flags, execute, resume_path
from tinyllm.config import (PRESETS, SHAPE_FIELDS, add_config_flags, apply_overrides,
                            given_fields, preset)
from tinyllm.data.corpus import load_data
from tinyllm.generate import generate
from tinyllm.load import load_model
from tinyllm.train import Pretraining, new_run, restore

DEFAULT_PRESET = "shakespeare-char-cpu"


def parser_for(prog, description, argv):
    """The parser of `tinyllm train`, in two passes: the preset first, so --help shows that
    preset's values. Returns (parser, model config, train config)."""
    first = Parser(add_help=False)
    first.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                       help="a named configuration: see tinyllm/config.py")
    name = first.parse_known_args(argv)[0].preset
    model_cfg, train_cfg = preset(name)
    parser = Parser(prog=prog, description=description, parents=[first],
                    conflict_handler="resolve")
    add_start_flags(parser, "start a new run from these weights and tokenizer (a run folder, "
                            "checkpoint file or Hugging Face GPT-2 folder)")
    parser.add_argument("--drop-unknown-chars", action="store_true",
                        help="with --init and a char model: drop characters of --data that "
                             "its tokenizer cannot encode (default: an error listing them)")
    add_config_flags(parser, model_cfg, train_cfg)
    return parser, model_cfg, train_cfg


def main(argv):
    parser, model_cfg, train_cfg = parser_for(
        "tinyllm train", "Train a GPT on Tiny Shakespeare by character (default), on a text "
        "file (--data FILE) or on a folder of token files written by `tinyllm prepare` "
        "(--dataset DIR).", argv)
    args = parser.parse_args(argv)
    run = execute(args, apply_overrides(train_cfg, args).out_dir,
                  lambda: start_run(args, model_cfg, train_cfg))
    if run.train_cfg.sample_tokens and run.dist.is_root:
        _closing_sample(run)


def start_run(args, model_cfg, train_cfg):
    """(run, task) for a fresh run, a resumed one (--resume) or one from weights (--init)."""
    train_cfg = apply_overrides(train_cfg, args)
    shape_flags = sorted(set(given_fields(model_cfg, args)) & set(SHAPE_FIELDS))
    if (args.resume or args.init) and shape_flags:
        raise ValueError(f"{', '.join('--' + f.replace('_', '-') for f in shape_flags)} cannot "
                         "change the shape of an existing model (--resume / --init)")
    if args.resume:
        run = restore(resume_path(train_cfg.out_dir), train_cfg.out_dir)
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


def _closing_sample(run):
    """Print sample_tokens tokens from the trained model, after a newline."""
    print("\n--- sample ---")
    idx = np.array([run.tokenizer.encode("\n")])  # (1, 1)
    tokens = generate(run.model, idx, run.train_cfg.sample_tokens, 0.8, 200,
                      rng=np.random.default_rng(run.train_cfg.seed))
    print_stream(run.tokenizer, "\n", tokens)
