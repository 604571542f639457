"""Train a byte-level BPE tokenizer on Tiny Shakespeare and look at what it learned.

Prints the first merges (the most frequent pairs of the text), the compression ratio (bytes per
token), and one line encoded and decoded again — each token in its own colour when the output
is a terminal. Run:

    python examples/02_train_bpe.py [--vocab-size 4096] [--data FILE]
"""
import argparse
import sys
import time

from tinyllm.data.download import shakespeare_path
from tinyllm.tokenizer import BPETokenizer

COLOURS = [41, 42, 43, 44, 45, 46]  # ANSI background colours, cycled token by token


def show_tokens(tokenizer, ids):
    """The decoded text, each token on its own background colour if stdout is a terminal."""
    pieces = [tokenizer.decode([i]) for i in ids]
    if not sys.stdout.isatty():
        return "|".join(pieces)
    return "".join(f"\x1b[{COLOURS[n % len(COLOURS)]}m{p}\x1b[0m" for n, p in enumerate(pieces))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=4096, help="(default 4096)")
    parser.add_argument("--data", help="a text file (default: $TINYLLM_DATA or the download)")
    args = parser.parse_args()
    text = shakespeare_path(args.data).read_text(encoding="utf-8")

    start = time.perf_counter()
    tokenizer = BPETokenizer.train(text, args.vocab_size)
    print(f"trained {args.vocab_size} tokens in {time.perf_counter() - start:.2f} s")
    print("first merges:")
    for (a, b), new in list(tokenizer.merges.items())[:10]:
        print(f"  {tokenizer.token_bytes(a)!r} + {tokenizer.token_bytes(b)!r} -> {new} "
              f"{tokenizer.token_bytes(new)!r}")

    ids = tokenizer.encode(text)
    print(f"compression: {len(text.encode('utf-8')) / len(ids):.2f} bytes per token "
          f"({len(ids):,} tokens for {len(text.encode('utf-8')):,} bytes)")
    line = "ROMEO: But, soft! what light through yonder window breaks?"
    line_ids = tokenizer.encode(line)
    assert tokenizer.decode(line_ids) == line
    print(f"{len(line_ids)} tokens: {line_ids}")
    print(show_tokens(tokenizer, line_ids))


if __name__ == "__main__":
    main()
