"""`tinyllm eval`: perplexity and bits per byte in one full pass, or multiple-choice accuracy.

    tinyllm eval --checkpoint out                            # the run's own validation split
    tinyllm eval --checkpoint out --text play.txt --json     # any text; machine-readable
    tinyllm eval --checkpoint gpt2 --dataset data/corpus     # the val.bin of prepared data
    tinyllm eval --checkpoint out --choices shakespeare-next-line --num-items 500
    tinyllm eval --checkpoint gpt2 --choices hellaswag_val.jsonl
"""
import json
from pathlib import Path

from tinyllm.choices import evaluate_choices, load_choices
from tinyllm.cli.common import Parser, add_checkpoint_flags
from tinyllm.data.corpus import read_text
from tinyllm.evaluate import dataset_val_ids, perplexity, perplexity_of_text, run_val_ids
from tinyllm.load import load_model
from tinyllm.next_line_task import NAME as NEXT_LINE
from tinyllm.next_line_task import next_line_items


def _parser():
    parser = Parser(prog="tinyllm eval",
                    description="Score a model on a whole text, every token once (sliding "
                                "windows), or on a multiple-choice task (--choices).")
    add_checkpoint_flags(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", metavar="FILE",
                        help="a UTF-8 text file to evaluate on (default: the validation split "
                             "the checkpoint's run trained against)")
    source.add_argument("--dataset", metavar="DIR",
                        help="a folder written by `tinyllm prepare`: evaluate on its val.bin")
    parser.add_argument("--stride", type=int, default=None,
                        help="tokens between window starts, 1..block_size (default: half the "
                             "block; block_size gives disjoint windows)")
    parser.add_argument("--choices", metavar="FILE.jsonl|" + NEXT_LINE,
                        help="instead of perplexity, multiple choice: a JSONL file in "
                             "HellaSwag's layout (ctx, endings, label), or the built-in "
                             f"{NEXT_LINE}, made from the validation text")
    parser.add_argument("--num-items", type=int, default=200,
                        help=f"items of {NEXT_LINE} to build")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"seeds the items of {NEXT_LINE} (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.num_items < 1:
        parser.error("--num-items must be at least 1")
    model, tokenizer, meta = load_model(args.checkpoint, args.base)
    progress = not args.no_progress
    if args.choices:
        items = _items(args, tokenizer, meta)
        report = {"choices": args.choices,
                  **evaluate_choices(model, tokenizer, items, progress).as_dict()}
    elif args.text:
        text = read_text(Path(args.text))
        report = {"source": args.text, **perplexity_of_text(
            model, tokenizer, text, args.stride, progress).as_dict()}
    else:
        source, ids = _val_ids(args, tokenizer, meta)
        report = {"source": source,
                  **perplexity(model, tokenizer, ids, args.stride, progress).as_dict()}
    print(json.dumps(report) if args.json else _describe(report))


def _val_ids(args, tokenizer, meta):
    """(name, ids) of the validation split: --dataset's, else the run's own."""
    if args.dataset:
        return f"{args.dataset} (val.bin)", dataset_val_ids(args.dataset, tokenizer)
    return "the run's validation split", run_val_ids(meta.get("train_config"), tokenizer)


def _items(args, tokenizer, meta):
    """The ChoiceItems --choices names: the built-in task from the validation text (or
    --text), else the JSONL file."""
    if args.choices != NEXT_LINE:
        return load_choices(args.choices)
    if args.text:
        text = read_text(Path(args.text))
    else:
        text = tokenizer.decode(_val_ids(args, tokenizer, meta)[1].tolist())
    return next_line_items(text, args.num_items, args.seed)


_LABELS = {"mean_loss": "mean loss (nats per token)"}


def _describe(report):
    """One `name: value` line per figure, floats to 4 decimals, counts with separators."""
    lines = []
    for name, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else (
            f"{value:,}" if isinstance(value, int) else value)
        lines.append(f"{_LABELS.get(name, name.replace('_', ' '))}: {shown}")
    return "\n".join(lines)
