"""`tinyllm plot`: pictures of a run (needs the extra: pip install 'tinyllm[plot]').

    tinyllm plot out                                        # out/loss.png: losses, learning rate
    tinyllm plot --attention --checkpoint out --prompt "ROMEO:"    # out/attention.png
"""
from pathlib import Path

from tinyllm.cli.common import Parser
from tinyllm.load import load_model
from tinyllm.plot import plot_attention, plot_training

DEFAULT_PROMPT = "ROMEO:\nBut, soft!"


def main(argv):
    parser = Parser(prog="tinyllm plot",
                    description="Draw a run's loss curves (from its log.jsonl and steps.jsonl), "
                                "or with --attention a model's attention maps, as a PNG.")
    parser.add_argument("out_dir", nargs="?", metavar="OUT_DIR",
                        help="the run folder to plot; writes OUT_DIR/loss.png")
    parser.add_argument("--attention", action="store_true",
                        help="draw every layer's and head's attention over --prompt instead")
    parser.add_argument("--checkpoint", default=None,
                        help="with --attention: a run folder, a checkpoint file or a Hugging "
                             "Face GPT-2 folder (default: OUT_DIR)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT,
                        help="with --attention: the text whose tokens label the axes "
                             f"(default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--max-tokens", type=int, default=24,
                        help="with --attention: draw the prompt's first this many tokens")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="the PNG to write (default: loss.png or attention.png in the run "
                             "or checkpoint folder)")
    args = parser.parse_args(argv)
    if args.attention:
        path = _attention(parser, args)
    elif args.out_dir is None:
        parser.error("give a run folder (tinyllm plot OUT_DIR) or --attention --checkpoint C")
    else:
        path = plot_training(args.out_dir, args.out)
    print(f"wrote {path}")


def _attention(parser, args):
    checkpoint = args.checkpoint or args.out_dir
    if checkpoint is None:
        parser.error("--attention needs --checkpoint (a run folder or checkpoint file)")
    if args.max_tokens < 1:
        parser.error("--max-tokens must be at least 1")
    model, tokenizer, _ = load_model(checkpoint)
    folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    path = args.out or folder / "attention.png"
    return plot_attention(model, tokenizer, args.prompt, path, args.max_tokens)
