"""Pictures of a run: its loss curves, and where its attention heads look.

Two figures, each written to a PNG file:
- `plot_training(out_dir)`: the run folder's logs as curves against the optimizer step: the
  loss of every step (steps.jsonl) under the evaluations' train and val loss (log.jsonl), the
  learning rate on a second y axis, and the tokens seen so far on a second x axis;
- `plot_attention(model, tokenizer, prompt, path)`: one heat map per layer and head, query
  tokens down, key tokens across, from `attention_maps.attention_probabilities`.

The logs come from elsewhere, so they are read defensively: a line cut short by a crash is
skipped, every value is type-checked, and non-finite numbers are left out. A resumed run cuts
its logs back to its checkpoint's step before appending; should a log still step backwards
(one written before that rule), the later records replace the ones they overlap, as the trim
would have, so each curve is one continuous run.

matplotlib is an optional extra (`pip install 'tinyllm[plot]'`), imported only when a picture
is drawn. Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so
nothing touches a global backend or window; saving a PNG renders with Agg.

Shapes: L layers, H heads, T prompt tokens, N records of a log.
Left out: live plotting during training, comparing several runs in one figure.
"""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyllm.attention_maps import attention_probabilities
from tinyllm.run_dir import read_records

MAX_LOG_BYTES = 256 * 2**20  # ~2.5M steps of steps.jsonl; a bigger "log" is not ours


class PlotError(ValueError):
    """A picture cannot be drawn: matplotlib is missing, or the run has nothing to show."""


@dataclass
class Curves:
    """A run's logs as series: {field: (iters (N,) int64, values (N,) float64)} per log."""

    evals: dict  # from log.jsonl: train_loss, val_loss, lr, tokens, other metrics
    steps: dict  # from steps.jsonl: loss, lr, tokens, elapsed_s


def read_curves(out_dir):
    """Every numeric field of a run folder's log.jsonl and steps.jsonl as a series.

    >>> import json, tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> records = [{"iter": 0, "val_loss": 4.2}, {"iter": 5, "val_loss": 2.0},
    ...            {"iter": 5, "val_loss": 2.1}, {"iter": 10, "val_loss": "nan?"}]
    >>> _ = (run / "log.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in records))
    >>> read_curves(run).evals   # iter 5 was logged again after a resume: the later one counts
    {'val_loss': (array([0, 5]), array([4.2, 2.1]))}
    """
    out_dir = Path(out_dir)
    return Curves(_read_series(out_dir / "log.jsonl"), _read_series(out_dir / "steps.jsonl"))


def _read_series(path):
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_LOG_BYTES:
        raise PlotError(f"{path} is {path.stat().st_size:,} bytes, more than a run's log "
                        f"({MAX_LOG_BYTES:,}) can be")
    points = {}  # field -> [(iter, value), ...]
    for record in _continuous(read_records(path)):
        for name, value in record.items():
            if name != "iter" and _is_finite_number(value):
                points.setdefault(name, []).append((record["iter"], float(value)))
    return {name: (np.array([i for i, _ in pts], dtype=np.int64),  # (N,)
                   np.array([v for _, v in pts], dtype=np.float64))  # (N,)
            for name, pts in points.items()}


def _continuous(records):
    """The records of one uninterrupted run: a record whose iter is not past the last kept
    one starts a resumed segment, which replaces every kept record from its iter on."""
    kept = []
    for record in records:
        it = record["iter"]
        if isinstance(it, bool) or not 0 <= it < 2**62:  # read_records checked it is an int
            continue
        while kept and kept[-1]["iter"] >= it:
            kept.pop()
        kept.append(record)
    return kept


def _is_finite_number(value):
    """A JSON number that fits a float and is finite (json reads NaN, Infinity, 1e999 too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 1e300 and math.isfinite(value)  # a huge int would overflow float()


def plot_training(out_dir, path=None):
    """Draw the run's loss curves and learning rate into `path` (default out_dir/loss.png);
    returns the path. Raises PlotError when neither log holds a loss."""
    out_dir = Path(out_dir)
    curves = read_curves(out_dir)
    path = out_dir / "loss.png" if path is None else Path(path)
    fig = _figure(figsize=(8, 4.5))
    ax = fig.subplots()
    if not _draw_losses(ax, curves):
        raise PlotError(f"no loss values in {out_dir}/log.jsonl or steps.jsonl to plot")
    lr = _first(curves, "lr")
    if lr is not None:
        twin = ax.twinx()
        twin.plot(*lr, color="0.4", linestyle="--", linewidth=1, label="learning rate")
        twin.set_ylim(bottom=0.0)
        twin.set_ylabel("learning rate")
        _merge_legends(ax, twin)
    else:
        ax.legend(loc="upper right")
    _tokens_axis(ax, _first(curves, "tokens"))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _draw_losses(ax, curves):
    """Each step's loss (thin, noisy) under the evaluations' losses; False if there are none."""
    drawn = False
    if "loss" in curves.steps:
        ax.plot(*curves.steps["loss"], color="C0", alpha=0.35, linewidth=0.7,
                label="train loss (one batch)")
        drawn = True
    for i, name in enumerate(n for n in curves.evals if n.endswith("loss")):
        ax.plot(*curves.evals[name], color=f"C{i + 1}", marker="o", markersize=3,
                label=name.replace("_", " ") + " (evaluation)")
        drawn = True
    ax.set_xlim(left=0)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    return drawn


def _first(curves, name):
    """A field's series from steps.jsonl (denser), else from log.jsonl, else None."""
    return curves.steps.get(name, curves.evals.get(name))


def _merge_legends(ax, twin):
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = twin.get_legend_handles_labels()
    twin.legend(handles + more_handles, labels + more_labels, loc="upper right")


def _tokens_axis(ax, tokens):
    """A top x axis in tokens seen, mapping steps to tokens through the logged pairs (exact
    even if the batch size changed on a resume). Skipped when tokens were not logged."""
    if tokens is None or len(tokens[0]) < 2 or not np.all(np.diff(tokens[1]) > 0):
        return
    from matplotlib.ticker import EngFormatter

    steps, seen = tokens[0].astype(np.float64), tokens[1]  # (N,), (N,) both increasing
    top = ax.secondary_xaxis("top", functions=(lambda s: _interp(s, steps, seen),
                                               lambda t: _interp(t, seen, steps)))
    top.xaxis.set_major_formatter(EngFormatter())
    top.set_xlabel("tokens seen")


def _interp(x, xp, fp):
    """np.interp, but continued past both ends along the line through the first and last
    points (np.interp would hold the end values, and the axis margins lie out there)."""
    x = np.asarray(x, dtype=np.float64)
    slope = (fp[-1] - fp[0]) / (xp[-1] - xp[0])
    inside = np.interp(x, xp, fp)
    before, after = fp[0] + slope * (x - xp[0]), fp[-1] + slope * (x - xp[-1])
    return np.where(x < xp[0], before, np.where(x > xp[-1], after, inside))


def plot_attention(model, tokenizer, prompt, path, max_tokens=24):
    """Draw every layer's and head's attention over the prompt's tokens into `path` (a grid:
    layers down, heads across); returns the path. Only the first `max_tokens` tokens are
    drawn: attention is causal, so later tokens would not change theirs."""
    ids = tokenizer.encode(prompt)[: min(max_tokens, model.config.block_size)]
    if not ids:
        raise PlotError("the prompt is empty: there is no attention to draw")
    probs = attention_probabilities(model, ids)  # (L, H, T, T)
    L, H, T, _ = probs.shape
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # (T, T): left blank, never attended
    panel = max(2.0, 0.5 + 0.11 * T)  # inches: room for T tick labels of 6-7 points each
    fig = _figure(figsize=(1.2 + panel * H, 0.8 + panel * L), layout="constrained")
    axes = fig.subplots(L, H, squeeze=False)  # (L, H)
    labels = [token_label(tokenizer.decode([i])) for i in ids]
    for (layer, head), ax in np.ndenumerate(axes):
        image = ax.imshow(np.ma.masked_array(probs[layer, head], future), vmin=0.0, vmax=1.0,
                          cmap="viridis")
        ax.set_title(f"layer {layer}, head {head}", fontsize=8)
        _token_ticks(ax, labels, bottom=layer == L - 1, left=head == 0)
    fig.supxlabel("key (attended to)", fontsize=9)
    fig.supylabel("query (attending)", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention probability")
    fig.savefig(path, dpi=90)
    return Path(path)


def _token_ticks(ax, labels, bottom, left):
    """Every position ticked; the tokens written only along the grid's bottom and left edge.
    parse_math=False: a token such as "$" must not start a TeX formula."""
    T = len(labels)
    size = 7 if T <= 16 else 6
    ax.set_xticks(range(T), labels, rotation=90, fontsize=size, parse_math=False)
    ax.set_yticks(range(T), labels, fontsize=size, parse_math=False)
    ax.tick_params(length=2, labelbottom=bottom, labelleft=left)


def token_label(text):
    """A token's text made visible as a tick label: a space as ␣, control characters escaped.

    >>> token_label("\\n"), token_label(" the"), token_label("a\\tb")
    ('\\\\n', '␣the', 'a\\\\tb')
    """
    visible = (c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return "".join(visible).replace(" ", "␣")


def _figure(**kwargs):
    """A new matplotlib Figure, or PlotError naming the extra to install."""
    try:
        import matplotlib.figure
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install 'tinyllm[plot]'") from None
    return matplotlib.figure.Figure(**kwargs)
