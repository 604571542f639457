"""A GPT on BPE tokens of Tiny Shakespeare, scored in bits per character to compare with the
character-level model.

Steps: `prepare` the text into BPE token files (a vocabulary of 1024 learned from the text,
documents separated by <|endoftext|>), train the shakespeare-char-cpu model shape on them
through np.memmap, and convert the validation loss from nats per token to bits per character:

    bits/char = (nats/token) * (tokens / characters) / ln 2

where the characters are those of the validation text the tokens decode to (each
<|endoftext|> counted as the blank line it replaced). The val loss is the mean over the same
windows the training loop evaluates on (seeded with the config's seed), so it equals the last
val loss in the run's log.jsonl. The character model (README, seed 1337) reaches 1.9005 nats,
which is 1.9005 / ln 2 = 2.74 bits/char. Run:

    python examples/03_shakespeare_bpe.py [--vocab-size 1024] [--max_iters 2000] [--data FILE]
"""
import os

# Before NumPy loads OpenBLAS: its idle workers then sleep instead of spinning on the cores the
# next Numba kernel needs (autograd/kernels/threads.py); tune_process() below does the rest.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import dataclasses
import math
from pathlib import Path

from autograd.kernels import tune_process
from tinyllm.config import preset
from tinyllm.data.download import shakespeare_path
from tinyllm.data.pipeline import prepare
from tinyllm.data.corpus import load_data
from tinyllm.train import Pretraining, evaluate, new_run, train


def characters_per_token(tokenizer, ids, eot_id):
    """How many characters of text the tokens in `ids` stand for, per token."""
    ids = [int(i) for i in ids]
    n_eot = ids.count(eot_id)
    text = tokenizer.decode([i for i in ids if i != eot_id])
    return (len(text) + 2 * n_eot) / len(ids)  # an <|endoftext|> replaced a "\n\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=1024, help="(default 1024)")
    parser.add_argument("--max_iters", type=int, default=2000, help="(default 2000)")
    parser.add_argument("--eval_iters", type=int, default=200, help="(default 200)")
    parser.add_argument("--data", help="the text (default: $TINYLLM_DATA or the download)")
    parser.add_argument("--out", default="out/shakespeare-bpe",
                        help="(default out/shakespeare-bpe)")
    args = parser.parse_args()
    tune_process()  # one thread count for BLAS and Numba, idle workers asleep (threads.py)
    dataset = Path(args.out) / "data"
    meta = prepare(str(shakespeare_path(args.data)), str(dataset), f"bpe:{args.vocab_size}",
                   progress=False)

    model_cfg, train_cfg = preset("shakespeare-char-cpu")
    train_cfg = dataclasses.replace(
        train_cfg, dataset=str(dataset), out_dir=str(Path(args.out) / "model"),
        max_iters=args.max_iters, lr_decay_iters=args.max_iters, eval_iters=args.eval_iters,
        eval_interval=max(args.max_iters // 4, 1), sample_tokens=0)
    tokenizer, train_ids, val_ids = load_data(train_cfg)
    run = train(new_run(model_cfg, train_cfg, tokenizer), Pretraining(train_ids, val_ids))

    # train_cfg.seed picks the windows the training loop evaluated on: the same figure as its log
    nats_per_token = evaluate(run.model, val_ids, args.eval_iters, train_cfg.batch_size,
                              train_cfg.seed)
    chars = characters_per_token(tokenizer, val_ids, meta["separator"][0])
    print(f"BPE vocabulary {tokenizer.vocab_size}: {chars:.2f} characters per token")
    print(f"val loss {nats_per_token:.4f} nats/token = "
          f"{nats_per_token / chars / math.log(2):.3f} bits/char")


if __name__ == "__main__":
    main()
