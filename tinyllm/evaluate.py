"""Evaluation: how well a model predicts a text, measured in one deterministic pass.

Training estimates the validation loss from random windows (train.py's `evaluate`): cheap and
good enough to watch a run. A number to report, or to compare two models by, should instead
score every token of the text exactly once, each with as much context as the model can see.

The sliding window (as in Hugging Face's perplexity guide). The model reads at most
block_size tokens, so a long text is cut into windows: window k reads the inputs
[begin, end) with begin = k * stride and end = min(begin + block_size, N - 1), and predicts
the targets one position later. Only the targets no earlier window scored count, so every
token but the first (nothing precedes it) is scored exactly once, and all but those of the
first window with at least block_size - stride tokens of context. stride = block_size gives
disjoint windows, fastest but with little context at each window's start; the default, half a
block, costs twice the forward passes and gives every token at least half a block of context.

Units. The mean loss L (nats per token) and the perplexity exp(L) depend on the tokenizer: a
BPE token stands for several characters, so it is harder to predict than one character. Total
nats / ln 2 / (the bytes of the text the tokens stand for) is bits per byte, comparable across
tokenizers. A character model reports bits per character instead (one token is one character,
so it is simply L / ln 2), the figure char-rnn papers quote; for ASCII text the two agree.
Only the scored tokens count (all but the first), and special tokens such as <|endoftext|>
stand for no text: they are scored but count 0 bytes.

Shapes: N tokens in the text, B windows in one forward pass, T window length (<= block_size),
V vocabulary.
Leaves out: a beginning-of-sequence token to score the first token with, and padding windows
of different lengths into one batch (only the last window can be shorter; it runs alone).
"""
import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from autograd import functional as F
from autograd import no_grad
from tinyllm.config import TrainConfig
from tinyllm.data.corpus import load_data
from tinyllm.data.token_files import encoder
from tinyllm.tokenizer import CharTokenizer

_TOKENS_PER_BATCH = 8192  # inputs per forward pass, as train.py's eval_windows
_LOGITS_PER_BATCH = 1 << 25  # and at most this many logits (128 MB of float32): GPT-2, whose
# windows hold 1024 x 50257 logits each, runs one window at a time


class EvaluationError(ValueError):
    """Evaluation input that cannot be used: a record, a text or a setting, said in one line."""


@dataclass(frozen=True)
class Perplexity:
    """The outcome of one full pass: `nats` summed over `tokens` scored tokens, which stand for
    `length` units of text, `unit` being "byte" or "character".

    >>> r = Perplexity(tokens=4, nats=4 * math.log(2), length=8, unit="byte")
    >>> r.mean_loss, r.perplexity, r.bits_per_unit     # 1 bit per token, 2 bytes per token
    (0.6931471805599453, 2.0, 0.5)
    """

    tokens: int
    nats: float
    length: int
    unit: str

    @property
    def mean_loss(self):
        """Mean cross-entropy in nats per token."""
        return self.nats / self.tokens

    @property
    def perplexity(self):
        """exp(mean loss): as uncertain as a uniform choice among this many tokens."""
        return math.exp(self.mean_loss)

    @property
    def bits_per_unit(self):
        """Bits per byte (or per character): the text's compressed size under the model."""
        return self.nats / math.log(2) / self.length

    def as_dict(self):
        """Plain numbers for JSON, the units spelled out ("bytes", "bits_per_byte")."""
        return {"tokens": self.tokens, f"{self.unit}s": self.length,
                "mean_loss": self.mean_loss, "perplexity": self.perplexity,
                f"bits_per_{self.unit}": self.bits_per_unit}


def windows(n_tokens, block_size, stride):
    """(begin, end, skip) of each window over n_tokens ids: it reads ids[begin:end], predicts
    ids[begin + 1:end + 1], and scores the predictions from index `skip` on.

    >>> list(windows(10, 4, 2))  # scores targets 1-4, then 5-6, 7-8, and 9
    [(0, 4, 0), (2, 6, 2), (4, 8, 2), (6, 9, 2)]
    """
    if not 1 <= stride <= block_size:
        raise EvaluationError(f"stride must be in [1, block_size = {block_size}], got {stride}")
    last = n_tokens - 1  # the last target's index; inputs end one before it
    begin, scored_to = 0, 0  # targets up to index scored_to are done
    while scored_to < last:
        end = min(begin + block_size, last)
        yield begin, end, scored_to - begin
        begin, scored_to = begin + stride, end


def token_logprobs(model, x, y):
    """log p(y[b, t] | x[b, :t + 1]) under the model, without a graph: x, y (B, T) -> (B, T),
    float64 so that sums over long texts do not lose digits."""
    with no_grad():
        logits, _ = model(x)  # (B, T, V)
        logp = F.log_softmax(logits).data  # (B, T, V)
    picked = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]  # (B, T)
    return picked.astype(np.float64)


def perplexity(model, tokenizer, ids, stride=None, progress=False):
    """Score ids (N,) in one full pass of sliding windows (module docstring); stride defaults
    to half the block. ids may be a memmap: windows are read from it one batch at a time.

    >>> from tinyllm.config import GPTConfig
    >>> from tinyllm.model import GPT
    >>> tok = CharTokenizer.from_text("abcd")
    >>> config = GPTConfig(vocab_size=4, block_size=8, n_layer=1, n_head=1, n_embd=8)
    >>> model = GPT(config, np.random.default_rng(0))
    >>> r = perplexity(model, tok, tok.encode("abcdabcdabcdabcd"))
    >>> r.tokens, r.length, r.unit, round(r.perplexity)  # an untrained model: about uniform
    (15, 15, 'character', 4)
    """
    if len(ids) < 2:
        raise EvaluationError(f"{len(ids)} tokens: at least 2 are needed to score one")
    T, V = model.config.block_size, model.config.vocab_size
    stride = max(1, T // 2) if stride is None else stride
    per_batch = max(1, min(_TOKENS_PER_BATCH // T, _LOGITS_PER_BATCH // (T * V)))
    model.eval()
    nats = 0.0
    with tqdm(total=len(ids) - 1, unit="tok", disable=not progress) as bar:
        for batch in _batches(windows(len(ids), T, stride), per_batch):
            batch_nats, batch_tokens = _score_windows(model, ids, batch)
            nats += batch_nats
            bar.update(batch_tokens)
    return Perplexity(len(ids) - 1, nats, *scored_length(tokenizer, ids[1:]))


def _batches(wins, size):
    """Group consecutive windows of equal length, at most `size` to a group."""
    batch = []
    for w in wins:
        if batch and (len(batch) == size or w[1] - w[0] != batch[0][1] - batch[0][0]):
            yield batch
            batch = []
        batch.append(w)
    if batch:
        yield batch


def _score_windows(model, ids, batch):
    """(summed negative log-likelihood, tokens) over the scored targets of equal-length windows."""
    rows = np.stack([np.asarray(ids[begin:end + 1]) for begin, end, _ in batch])  # (B, T + 1)
    rows = rows.astype(np.int64)
    logp = token_logprobs(model, rows[:, :-1], rows[:, 1:])  # (B, T)
    skip = np.array([s for _, _, s in batch])  # (B,)
    scored = np.arange(logp.shape[1]) >= skip[:, None]  # (B, T): targets no window scored yet
    return -float(logp[scored].sum()), int(scored.sum())


def perplexity_of_text(model, tokenizer, text, stride=None, progress=False):
    """`perplexity` of a string, encoded as plain text ("<|endoftext|>" in it is just text).
    A character the tokenizer lacks is an error naming it and its position."""
    return perplexity(model, tokenizer, encoder(tokenizer)(text), stride, progress)


def scored_length(tokenizer, ids, chunk=1 << 20):
    """(length, unit) of the text that ids (N,) stand for: characters for a CharTokenizer,
    else UTF-8 bytes, special tokens counting none.

    >>> scored_length(CharTokenizer.from_text("ab"), [0, 1, 1])
    (3, 'character')
    """
    if isinstance(tokenizer, CharTokenizer):
        return len(ids), "character"
    special = set(tokenizer.special_tokens.values())
    sizes = np.zeros(tokenizer.vocab_size, dtype=np.int64)  # (V,) bytes of each token
    for i, piece in tokenizer.vocab.items():
        sizes[i] = 0 if i in special else len(piece)
    total = sum(int(sizes[np.asarray(ids[k:k + chunk])].sum()) for k in range(0, len(ids), chunk))
    return total, "byte"


def run_val_ids(train_config, tokenizer):
    """The validation ids (N,) a run trained against, rebuilt from its TrainConfig (a dict, as
    checkpoints store it): the same data, split the same deterministic way, in the checkpoint's
    tokenizer. A run on the default text finds it again through $TINYLLM_DATA or the cached
    download."""
    if not isinstance(train_config, dict):
        raise EvaluationError("the checkpoint records no training data (a Hugging Face model?): "
                              "pass a text or a dataset to evaluate on")
    try:
        train_cfg = TrainConfig(**train_config)
    except TypeError as e:  # a field this version does not know
        raise EvaluationError(f"the checkpoint's training config is unreadable: {e}") from None
    return load_data(train_cfg, tokenizer)[2]


def dataset_val_ids(directory, tokenizer):
    """The val.bin ids (N,) of a prepared dataset, checked to be in the given tokenizer."""
    return load_data(TrainConfig(dataset=str(directory)), tokenizer)[2]
