"""The `tinyllm` command: one subcommand per module of this package.

    tinyllm train --preset shakespeare-char-cpu            # ~0.8M parameters, minutes on a CPU
    tinyllm train --resume --out-dir out                   # continue exactly where it stopped
    tinyllm sample --checkpoint out --prompt "ROMEO:"      # also a Hugging Face GPT-2 folder
    tinyllm prepare corpus.jsonl data/corpus --tokenizer bpe:4096 --dedup --near-dup 0.8

`tinyllm COMMAND --help` describes each command's flags. Mistakes a user can make (a bad flag
value, a missing or corrupt file, a full disk) end with one line, `error: ...`, and a non-zero
exit code; `--debug` shows the full traceback instead.
"""
import importlib
import os
import sys

# name: (module in this package, what it does); `tinyllm --help` prints this table.
COMMANDS = {
    "train": ("train", "pretrain a GPT, continue a run (--resume) or start from weights (--init)"),
    "sample": ("sample", "generate text from a checkpoint (KV cache, top-k/top-p, --draft)"),
    "prepare": ("prepare", "clean, deduplicate and tokenize a corpus into token files"),
    "eval": ("eval", "perplexity and bits per byte over a whole text, or multiple choice"),
    "plot": ("plot", "draw a run's loss curves, or a model's attention maps (--attention)"),
    "export": ("export", "write a model as a Hugging Face GPT-2 folder (transformers opens it)"),
    "download": ("download", "fetch OpenAI's GPT-2 (gpt2 .. gpt2-xl) from the Hugging Face Hub"),
    "sft": ("sft", "instruction-tune a model (loss on responses only; --lora-rank for LoRA)"),
    "dpo": ("dpo", "preference-tune a model with DPO against its frozen start"),
    "chat": ("chat", "talk to an instruction-tuned model, interactively or one --prompt"),
}


def main(argv=None):
    """Run `tinyllm ARGV...`; exits with a one-line message on a user's mistake."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        sys.exit(0 if argv else 2)
    if argv[0] not in COMMANDS:
        sys.exit(f"error: unknown command {argv[0]!r}\n\n{_usage()}")
    try:
        _tune_process()  # a bad AUTOGRAD_THREADS is the user's error too
        module = importlib.import_module(f"tinyllm.cli.{COMMANDS[argv[0]][0]}")
        module.main(argv[1:])
    except BrokenPipeError:  # `tinyllm sample | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports it
    except Exception as e:  # noqa: BLE001 - sorted into ours and bugs by _is_user_error
        if debug or not _is_user_error(e):
            raise
        sys.exit(f"error: {_one_line(e)}")
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one outside it
        if debug:
            raise
        sys.exit("interrupted")


def _tune_process():
    """Tune this process for training and sampling (autograd.kernels.tune_process), starting
    before any command has imported NumPy: OpenBLAS reads OPENBLAS_THREAD_TIMEOUT only then."""
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # idle BLAS workers sleep at once
    from autograd.kernels import tune_process

    tune_process()


def _usage():
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return __doc__.strip() + "\n\ncommands:\n" + "\n".join(lines)


def _is_user_error(e):
    """Errors a user's input can cause: our own error types (all ValueError or RuntimeError
    subclasses, as are UnicodeDecodeError and the config checks) and file-system errors. A
    TypeError, KeyError or the like is a bug in tinyllm and keeps its traceback."""
    return isinstance(e, (ValueError, RuntimeError, OSError)) and not isinstance(
        e, (NotImplementedError, RecursionError))


def _one_line(e):
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split()) or type(e).__name__
