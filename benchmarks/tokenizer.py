"""Tokenizer benchmark: BPE training time and encode/decode throughput on Tiny Shakespeare.

Compares our BPETokenizer with tiktoken (encoding the very same vocabulary, loaded from our
rank file) and with Hugging Face `tokenizers` (its own byte-level BPE trainer, same vocab size),
each when installed. Figures are medians over --repeats runs; tiktoken runs single-threaded
(`encode_ordinary`), HF's trainer uses its default thread pool.

    TINYLLM_DATA=path/to/tinyshakespeare.txt python benchmarks/tokenizer.py

Prints the machine and a table, and writes benchmarks/results/tokenizer.json.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tinyllm.tokenizer import BPETokenizer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import median_seconds  # noqa: E402  (sibling scripts, found via HERE)
from machine import header  # noqa: E402

VOCAB_SIZES = (512, 4096, 16384)
ENCODE_VOCAB = 4096  # the vocabulary used for the encode/decode rows
REFERENCE_BYTES = 50_000  # the textbook trainer only gets this much text: it is that slow


def train_rows(text, repeats):
    rows, ours = [], {}
    for vocab_size in VOCAB_SIZES:
        seconds, ours[vocab_size] = median_seconds(
            lambda: BPETokenizer.train(text, vocab_size), repeats)
        rows.append(("train", f"vocab {vocab_size}", "tinyllm", seconds, None))
    head = text[:REFERENCE_BYTES]
    seconds, _ = median_seconds(lambda: BPETokenizer.train(head, 512, reference=True), 1)
    rows.append(("train", "vocab 512, first 50 kB", "tinyllm reference", seconds, None))
    seconds, _ = median_seconds(lambda: BPETokenizer.train(head, 512), repeats)
    rows.append(("train", "vocab 512, first 50 kB", "tinyllm", seconds, None))
    return rows, ours


def hf_train_rows(text, repeats):
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        return [], None

    def train(vocab_size):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator([text], trainer)
        return tok

    rows, trained = [], {}
    for vocab_size in VOCAB_SIZES:
        seconds, trained[vocab_size] = median_seconds(lambda: train(vocab_size), repeats)
        rows.append(("train", f"vocab {vocab_size}", "HF tokenizers", seconds, None))
    return rows, trained[ENCODE_VOCAB]


def codec_rows(name, encode, decode, text, repeats, fresh=None):
    """Encode and decode throughput; `fresh()`, if given, builds a new encoder each run so that
    the first call's set-up (our rank table) is timed as well."""
    n_bytes = len(text.encode("utf-8"))
    rows = []
    if fresh is not None:
        seconds, _ = median_seconds(lambda: fresh()(text), repeats)
        rows.append(("encode", "new tokenizer", name, seconds, n_bytes / seconds / 1e6))
    seconds, ids = median_seconds(lambda: encode(text), repeats)
    rows.append(("encode", "", name, seconds, n_bytes / seconds / 1e6))
    seconds, _ = median_seconds(lambda: decode(ids), repeats)
    rows.append(("decode", "", name, seconds, n_bytes / seconds / 1e6))
    return rows


def tiktoken_encoding(tok):
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ours.tiktoken")
        tok.save_tiktoken(path)
        os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read our file, never a cached copy
        ranks = load_tiktoken_bpe(path)
    return tiktoken.Encoding("tinyllm", pat_str=tok.pattern, mergeable_ranks=ranks,
                             special_tokens={})


def all_rows(text, repeats):
    rows, ours = train_rows(text, repeats)
    hf_rows, hf_tok = hf_train_rows(text, repeats)
    rows += hf_rows
    tok = ours[ENCODE_VOCAB]
    fresh = lambda: BPETokenizer(tok.merges, tok.pattern).encode_ordinary  # noqa: E731
    rows += codec_rows("tinyllm", tok.encode_ordinary, tok.decode, text, repeats, fresh)
    enc = tiktoken_encoding(tok)
    if enc is not None:
        assert enc.encode_ordinary(text) == tok.encode_ordinary(text), "ids differ from tiktoken"
        rows += codec_rows("tiktoken", enc.encode_ordinary, enc.decode, text, repeats)
    if hf_tok is not None:
        encode = lambda t: hf_tok.encode(t).ids  # noqa: E731
        rows += codec_rows("HF tokenizers", encode, hf_tok.decode, text, repeats)
    return rows


def print_table(rows):
    print(f"{'task':<7} {'setting':<23} {'implementation':<18} {'median s':>9} {'MB/s':>7}")
    for task, setting, name, seconds, mb_per_s in rows:
        rate = f"{mb_per_s:7.1f}" if mb_per_s is not None else f"{'':7}"
        print(f"{task:<7} {setting:<23} {name:<18} {seconds:9.3f} {rate}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("TINYLLM_DATA"),
                        help="Tiny Shakespeare text file (default: $TINYLLM_DATA)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=HERE / "results" / "tokenizer.json")
    args = parser.parse_args()
    if not args.data:
        parser.error("pass --data or set TINYLLM_DATA to the Tiny Shakespeare text file")
    text = Path(args.data).read_text(encoding="utf-8")
    from autograd.kernels import cores, set_threads

    set_threads(cores())  # the libraries' default, set so that the GEMM peak can name it
    line, machine = header(cores())
    print(line)
    rows = all_rows(text, args.repeats)
    print_table(rows)
    keys = ("task", "setting", "implementation", "median_seconds", "mb_per_s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "data_bytes": len(text.encode()), "repeats": args.repeats,
                   "rows": [dict(zip(keys, row)) for row in rows]}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
