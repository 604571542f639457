"""What every command shares: the argument parser of the command-line convention, and
printing sampled tokens as they come.

The convention: flags are spelled with dashes (`--max-iters`), and the config-field spelling
with underscores (`--max_iters`, nanoGPT's habit) is accepted as an alias. `Parser` rewrites
the alias before argparse sees it, so `--help` lists each flag once.
"""
import argparse
import sys
import time

from tinyllm.generate import text_decoder


class Parser(argparse.ArgumentParser):
    """argparse with the underscore aliases, errors as one `error: ...` line, and `--debug`
    listed in the help (the dispatcher in `tinyllm.cli` consumes it)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(**kwargs)
        self.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([self._dashed(a) for a in args], namespace)

    def _dashed(self, arg):
        """`--max_iters` -> `--max-iters` (also in `--max_iters=5`) when that flag exists."""
        if not arg.startswith("--") or "_" not in arg:
            return arg
        name, eq, value = arg.partition("=")
        dashed = name.replace("_", "-")
        return dashed + eq + value if dashed in self._option_string_actions else arg

    def error(self, message):
        self.print_usage(sys.stderr)
        sys.exit(f"error: {message}")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to a flag's help unless it has none (None, False) or says it."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


CHECKPOINT_HELP = ("a run folder, a checkpoint file, a Hugging Face GPT-2 folder (or name: "
                   "gpt2 .. gpt2-xl), or a LoRA adapter file with --base")


def add_checkpoint_flags(parser, default="out"):
    """--checkpoint (any model source) and --base (the model a LoRA adapter file adapts)."""
    parser.add_argument("--checkpoint", default=default, help=CHECKPOINT_HELP)
    parser.add_argument("--base", default=None,
                        help="with an adapter file as --checkpoint: the model it was trained "
                             "on (the path recorded in the file is not followed)")


def print_stream(tokenizer, prompt, tokens):
    """Print the prompt, then each token of `tokens` ((1,) arrays) as soon as it is sampled
    (generate.text_decoder keeps a UTF-8 character split across tokens whole)."""
    print(prompt, end="", flush=True)
    decode = text_decoder(tokenizer)
    for token in tokens:
        print(decode([int(token[0])]), end="", flush=True)
    print(decode([], final=True))


def compile_kernels(config):
    """Run one forward and backward pass of a tiny model shaped like `config` (its positions,
    norm, MLP and dtype, small sizes), so Numba compiles every kernel training will call before
    the progress bar starts, and say so when that takes a while: the first run on a machine
    compiles for 8-15 s on our 2 cores (in two processes when it can: warmup.py), later ones
    load the machine code from Numba's cache in a fraction of a second."""
    from tinyllm.cli import warmup

    print("preparing the Numba kernels (a first run compiles them: ~10 s) ...", end=" ",
          flush=True)
    tick = time.perf_counter()
    how = warmup.compile_step(config)
    seconds = time.perf_counter() - tick
    first = how != "alone" or seconds > 2.0  # loading from the cache takes well under a second
    where = {"alone": "", "helped": ", in 2 processes",
             "helper failed": "; the helper process failed, so this one compiled its share"}
    print(f"compiled in {seconds:.0f} s{where[how]} (first run only; cached from now on)"
          if first else f"done in {seconds:.1f} s", flush=True)
