"""Supervised fine-tuning (instruction tuning): next-token loss on the responses only.

Each example becomes one sequence, prompt then response then end marker (template.py), and the
model is trained on it exactly as in pretraining: inputs x = seq[:-1], targets y = seq[1:], so
position i learns to predict token i + 1. What changes is which targets count. A target that
is a prompt token is set to IGNORE_INDEX (-100, PyTorch's and F.cross_entropy's default), so
the loss is the mean over response tokens only: the model is not graded on reproducing the
template or the question, only on answering. `train_on_prompt=True` counts the prompt as well.

The boundary, for a prompt p of length P and a response r (end marker included):

    position i    0     1    ...  P-2       P-1     P     ...
    x             p0    p1   ...  p[P-2]    p[P-1]  r0    ...
    y             -100  -100 ...  -100      r0      r1    ...   (train_on_prompt: p1 ... p[P-1])

The first counted target, r0, sits at the position of the last prompt token: it is predicted
from the whole prompt, which ends with "### Response:\\n".

Batches hold sequences of different lengths, so they are right-padded to the longest one: x
with a valid id (the first end-marker id; any would do, since causal attention keeps padding
from reaching the real positions before it) and y with IGNORE_INDEX, so padding never counts.
A sequence longer than block_size + 1 tokens is cut at the right end. The prompt is kept whole
(a response to a question the model never saw in full would teach it to make things up), and
the end marker of a cut response is lost with the tail, so the model is never taught to stop
in mid-answer. `SFTTask.n_truncated` says how many training examples were cut.

Shapes: B batch, T time (the longest sequence in the batch, <= block_size), V vocabulary.
Left out: packing several examples into one row (less padding, but the attention masks must then
stop at example boundaries), and multi-turn conversations.
"""
import numpy as np

from autograd import no_grad
from tinyllm.finetune.data import DataError
from tinyllm.finetune.template import encode_prompt, encode_response, end_ids

IGNORE_INDEX = -100


def encode_examples(tokenizer, examples):
    """[(prompt ids, response ids + end marker)] for Examples (or anything with instruction,
    input and output); a text the tokenizer cannot encode raises DataError naming the example.

    >>> from tinyllm.finetune.data import Example
    >>> from tinyllm.finetune.template import format_prompt
    >>> from tinyllm.tokenizer import CharTokenizer
    >>> tok = CharTokenizer.from_text(format_prompt("hi") + "yo")
    >>> prompt, response = encode_examples(tok, [Example("hi", "", "yo")])[0]
    >>> len(prompt), tok.decode(response)
    (142, 'yo\\n\\n')
    """
    return [encode_pair(tokenizer, i, ex, ex.output) for i, ex in enumerate(examples)]


def encode_pair(tokenizer, index, example, response):
    """(prompt ids, response ids + end marker) of example number `index`, or a DataError."""
    try:
        return (encode_prompt(tokenizer, example.instruction, example.input),
                encode_response(tokenizer, response))
    except ValueError as e:
        raise DataError(f"example {index} ({example.instruction[:40]!r}...): {e}") from None


def make_batch(pairs, block_size, pad_id, train_on_prompt=False):
    """Inputs and targets (B, T) int64 for a list of (prompt ids, response ids) pairs.

    >>> x, y = make_batch([([5, 6], [7, 8]), ([5], [9])], block_size=8, pad_id=0)
    >>> x.tolist(), y.tolist()
    ([[5, 6, 7], [5, 0, 0]], [[-100, 7, 8], [9, -100, -100]])
    """
    T = max(min(len(p) + len(r), block_size + 1) - 1 for p, r in pairs)
    x = np.full((len(pairs), T), pad_id, dtype=np.int64)  # (B, T)
    y = np.full((len(pairs), T), IGNORE_INDEX, dtype=np.int64)  # (B, T)
    for b, (prompt, response) in enumerate(pairs):
        seq = (prompt + response)[:block_size + 1]  # cut on the right (see the docstring)
        n = len(seq) - 1
        x[b, :n], y[b, :n] = seq[:-1], seq[1:]
        if not train_on_prompt:
            y[b, :len(prompt) - 1] = IGNORE_INDEX  # targets p1 .. p[P-1] are the prompt's
    return x, y


def check_room(pairs, block_size):
    """Raise DataError unless some (prompt, response) pair keeps a response token in the block,
    so that a validation loss exists."""
    if not any(len(p) <= block_size for p, _ in pairs):
        raise DataError(f"block_size {block_size} is too short for any validation prompt and "
                        "the start of its response")


def masked_loss_sum(model, x, y):
    """(sum of the loss over counted targets, their count) for one batch, without a graph."""
    with no_grad():
        _, loss = model(x, y)  # the mean over counted targets (0 if none)
    n = int(np.count_nonzero(y != IGNORE_INDEX))
    return loss.item() * n, n


class SFTTask:
    """Instruction tuning for the training loop: random training batches, a validation loss.

    splits: data.Splits of Examples. The loop (tinyllm/train.py) calls `loss(model, cfg, rng)`
    each micro-step and `evaluate(model, cfg)` at each evaluation.
    """

    def __init__(self, tokenizer, splits, block_size, batch_size, train_on_prompt=False):
        self.block_size, self.batch_size = block_size, batch_size
        self.train_on_prompt = train_on_prompt
        self.pad_id = end_ids(tokenizer)[0]
        self.splits = {name: encode_examples(tokenizer, getattr(splits, name))
                       for name in ("train", "val", "test")}
        self.n_truncated = sum(len(p) + len(r) > block_size + 1 for p, r in self.splits["train"])
        check_room(self.splits["val"], block_size)

    def describe(self):
        n = {name: len(pairs) for name, pairs in self.splits.items()}
        return (f"{n['train']:,} train / {n['val']:,} val examples ({self.n_truncated} cut at "
                f"block_size {self.block_size})")

    def batch(self, rng):
        """(x, y) (B, T) for batch_size training examples drawn uniformly with replacement."""
        train = self.splits["train"]
        picks = rng.integers(0, len(train), size=self.batch_size)  # (B,)
        return make_batch([train[i] for i in picks], self.block_size, self.pad_id,
                          self.train_on_prompt)

    def loss(self, model, cfg, rng):
        """(mean loss over the counted targets of a training batch, tokens in it): the loop
        backpropagates the loss. The model runs in whatever mode the loop set (train, for
        dropout); cfg is the run's TrainConfig (the batch size was fixed at construction)."""
        x, y = self.batch(rng)
        _, loss = model(x, y)
        return loss, x.size

    def skip(self, model, cfg, rng):
        """Draw the batch `loss` would, and drop it: another rank computes it (distributed.py)."""
        rng.integers(0, len(self.splits["train"]), size=self.batch_size)

    def evaluate(self, model, cfg=None):
        """{"train_loss", "val_loss"}: the response loss over every validation example, and
        over as many training examples (the first ones: the same each time), for the log."""
        n = len(self.splits["val"])
        return {"train_loss": self._mean_loss(model, self.splits["train"][:n]),
                "val_loss": self._mean_loss(model, self.splits["val"])}

    def evaluate_split(self, model, split="val"):
        """{"<split>_loss": mean loss over every response token of the split} (eval mode, no
        graph; batches in order, so every evaluation sees the same ones)."""
        return {f"{split}_loss": self._mean_loss(model, self.splits[split])}

    def _mean_loss(self, model, pairs):
        model.eval()
        total, count = 0.0, 0
        for x, y in self.batches(pairs):
            loss_sum, n = masked_loss_sum(model, x, y)
            total, count = total + loss_sum, count + n
        return total / max(count, 1)

    def batches(self, pairs):
        """(x, y) batches of the (prompt, response) pairs in order, batch_size pairs each (the
        last may be smaller); always with the prompt masked, so "loss" means the response
        loss."""
        for start in range(0, len(pairs), self.batch_size):
            yield make_batch(pairs[start:start + self.batch_size], self.block_size, self.pad_id)
