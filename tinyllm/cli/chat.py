"""`tinyllm chat`: talk to an instruction-tuned model (`tinyllm sft`, `tinyllm dpo`).

    tinyllm chat --checkpoint out-sft                                  # type a message, Enter
    tinyllm chat --checkpoint out-sft --prompt "Name three colours."   # one answer, then exit
    printf 'Say hi.\\nName a colour.\\n' | tinyllm chat --checkpoint out-sft

Each line is a message, formatted with the fine-tuning template (tinyllm/finetune/template.py);
the answer streams as it is sampled and ends at the model's end-of-text. Earlier turns stay in
the context while they fit (tinyllm/finetune/chat.py). End with Ctrl-D (or Ctrl-C).
"""
import sys

import numpy as np

from tinyllm.cli.common import Parser, add_checkpoint_flags
from tinyllm.cli.sample import add_sampling_flags
from tinyllm.finetune.chat import ChatError, respond
from tinyllm.load import load_model


def main(argv):
    parser = Parser(prog="tinyllm chat", description="Chat with an instruction-tuned model.")
    add_checkpoint_flags(parser)
    parser.add_argument("--prompt", default=None,
                        help="answer this one message and exit (default: read lines from stdin)")
    add_sampling_flags(parser)
    args = parser.parse_args(argv)
    if args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be >= 1")
    model, tokenizer, _ = load_model(args.checkpoint, args.base)
    rng = np.random.default_rng(args.seed)
    if args.prompt is not None:
        _answer(model, tokenizer, [], args.prompt, args, rng)
        return
    history = []
    for message in _messages():
        try:
            history.append((message, _answer(model, tokenizer, history, message, args, rng)))
        except ChatError as e:  # one bad message need not end the conversation
            print(f"error: {e}", file=sys.stderr)


def _messages():
    """Yield the non-blank lines of stdin, showing a "> " prompt when a person is typing."""
    prompt = "> " if sys.stdin.isatty() else ""
    while True:
        try:
            line = input(prompt)
        except EOFError:
            return
        if line.strip():
            yield line.strip()


def _answer(model, tokenizer, history, message, args, rng):
    """Print the answer as it streams; return its text (for the history)."""
    pieces = []
    for piece in respond(model, tokenizer, history, message, args.max_new_tokens,
                         args.temperature, args.top_k, args.top_p, rng):
        print(piece, end="", flush=True)
        pieces.append(piece)
    print()
    return "".join(pieces)
