"""Look at a trained model: the README's two pictures, its loss curves and its attention maps.

1. A run: the shakespeare-char-cpu preset (nanoGPT's laptop configuration, about 90 s on an
   idle two-core machine), trained into --out-dir unless that folder already holds one.
2. docs/loss.png: the loss of every step, the evaluations' train and val loss, the learning
   rate's warmup and cosine decay, and the tokens seen (tinyllm/plot.py: plot_training).
3. docs/attention.png: every layer's and head's attention over the first characters of a line
   of the play (tinyllm/attention_maps.py recomputes the probabilities that the fused attention
   kernel never stores). Look for heads that attend to the previous character, to the start
   of the word, or back to the newline.

Both PNGs are kept small for the repository (dpi 90-100); the script checks they are under
200 KB. Needs the extra: pip install 'tinyllm[plot]'.

    python examples/05_plots.py                      # train into out-plots/, then draw
    python examples/05_plots.py --out-dir out        # draw an existing run instead
"""
import argparse
from pathlib import Path

from tinyllm.cli import main as tinyllm
from tinyllm.load import load_model
from tinyllm.plot import plot_attention, plot_training
from tinyllm.run_dir import RUN_FILES

DOCS = Path(__file__).resolve().parent.parent / "docs"
PROMPT = "ROMEO:\nBut, soft! what light"
MAX_BYTES = 200_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="out-plots",
                        help="a run folder; trained with the preset if it holds no run yet "
                             "(default: out-plots)")
    parser.add_argument("--docs", default=str(DOCS), help="where the PNGs go (default: docs/)")
    parser.add_argument("--prompt", default=PROMPT, help="the text of the attention maps")
    return parser.parse_args()


def ensure_run(out_dir):
    """Train the preset into out_dir, unless a run is already there."""
    if any((out_dir / name).exists() for name in RUN_FILES):
        print(f"using the run in {out_dir}/")
        return
    tinyllm(["train", "--preset", "shakespeare-char-cpu", "--out-dir", str(out_dir),
             "--no-progress", "--sample-tokens", "0"])


def check_size(path):
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1000:.0f} KB)")
    if size >= MAX_BYTES:
        raise SystemExit(f"error: {path} is {size:,} bytes, over the {MAX_BYTES:,} allowed")


def main():
    args = parse_args()
    out_dir, docs = Path(args.out_dir), Path(args.docs)
    ensure_run(out_dir)
    docs.mkdir(parents=True, exist_ok=True)
    check_size(plot_training(out_dir, docs / "loss.png"))
    model, tokenizer, _ = load_model(out_dir)  # best.npz: the lowest validation loss
    check_size(plot_attention(model, tokenizer, args.prompt, docs / "attention.png"))


if __name__ == "__main__":
    main()
