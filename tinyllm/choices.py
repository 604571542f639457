"""Multiple choice by likelihood: which ending does the model find most probable?

A benchmark such as HellaSwag (Zellers et al., 2019) gives a context and several endings, one
right. The model generates nothing: each ending is scored by the sum of the log-probabilities
of its tokens, each given the context and the ending's tokens before it,
    score(e) = sum_t log p(e_t | context, e_<t),
and the answer is the best score under one of three rules, all reported:
- acc: the plain sum. Every token adds a negative term, so it favours short endings.
- acc_norm: the sum divided by the ending's length in characters (lm-evaluation-harness's
  acc_norm; for ASCII text, its length in bytes), which does not depend on the tokenizer.
- acc_token_mean: the sum divided by the ending's number of tokens, the mean loss over the
  completion that llm.c's HellaSwag evaluation compares.

Records use HellaSwag's layout, one JSON object a line: {"ctx": str, "endings": [str, ...],
"label": int}. Each ending follows the context after a space, as in HellaSwag's sentences.

Tokenization: the context and " " + ending are encoded separately and joined, as llm.c does
(lm-evaluation-harness encodes the whole string and keeps what follows the context's tokens).
Either way BPE may split the joined text differently from the whole: here the scored tokens
are always exactly the ending's own text, at the cost of a boundary the tokenizer would not
produce itself. With GPT-2's split pattern the two agree whenever the ending starts with a
space and a letter, since " word" always begins a new chunk; for characters they are identical.
When context and ending exceed block_size + 1 tokens, the context loses tokens on the left.

Shapes: K endings of an item, L the longest of its token rows (context + ending).
Leaves out: few-shot prompts, normalising by the ending's unconditional probability
(acc_mutual_info), and batching several items into one forward pass.
"""
import json
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from tinyllm.data.token_files import encoder
from tinyllm.evaluate import EvaluationError, token_logprobs


@dataclass(frozen=True)
class ChoiceItem:
    """One question: a context, its candidate endings, the index of the right one, the text
    put between context and ending, and where the item came from (for error messages)."""

    context: str
    endings: tuple
    label: int
    separator: str = " "
    where: str = ""


@dataclass(frozen=True)
class ChoiceScores:
    """One item's scores: summed log-probability, tokens and characters of each ending (K,)."""

    logprob: np.ndarray
    n_tokens: np.ndarray
    n_chars: np.ndarray
    label: int


@dataclass(frozen=True)
class ChoiceResult:
    """Items answered right under each rule, out of `items`."""

    items: int
    correct: int  # argmax of the summed log-probability
    correct_norm: int  # ... divided by the ending's characters
    correct_token_mean: int  # ... divided by the ending's tokens

    def as_dict(self):
        """Counts and accuracies, for JSON."""
        return {"items": self.items, "correct": self.correct, "acc": self.correct / self.items,
                "correct_norm": self.correct_norm, "acc_norm": self.correct_norm / self.items,
                "correct_token_mean": self.correct_token_mean,
                "acc_token_mean": self.correct_token_mean / self.items}


def load_choices(path):
    """The items of a JSONL file in HellaSwag's layout; any malformed line is an error that
    names file:line. Blank lines are skipped."""
    items = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                items.append(parse_record(line, f"{path}:{number}"))
    if not items:
        raise EvaluationError(f"{path}: no records")
    return items


def parse_record(line, where):
    """A ChoiceItem from one JSON line, every field's type and range checked.

    >>> parse_record('{"ctx": "A cat", "endings": ["sat.", "flew."], "label": 0}', "x:1")
    ChoiceItem(context='A cat', endings=('sat.', 'flew.'), label=0, separator=' ', where='x:1')
    """
    try:
        record = json.loads(line)
    except ValueError as e:
        raise EvaluationError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(record, dict):
        raise EvaluationError(f"{where}: expected a JSON object, got {type(record).__name__}")
    ctx, endings, label = record.get("ctx"), record.get("endings"), record.get("label")
    if not isinstance(ctx, str) or not ctx:
        raise EvaluationError(f"{where}: 'ctx' must be a non-empty string")
    if not isinstance(endings, list) or len(endings) < 2:
        raise EvaluationError(f"{where}: 'endings' must be a list of at least 2 strings")
    if not all(isinstance(e, str) and e for e in endings):
        raise EvaluationError(f"{where}: every ending must be a non-empty string")
    if type(label) is not int or not 0 <= label < len(endings):  # bool is not a label
        raise EvaluationError(f"{where}: 'label' must be an integer in [0, {len(endings)})")
    return ChoiceItem(ctx, tuple(endings), label, " ", where)


def score_item(model, tokenizer, item):
    """The scores of each of the item's K endings, in one forward pass over K padded rows."""
    encode = encoder(tokenizer)
    context = encode(item.context)
    rows, n_cont = [], []
    for ending in item.endings:
        continuation = encode(item.separator + ending)
        rows.append(_fit(context, continuation, model.config.block_size, item.where))
        n_cont.append(len(continuation))
    lengths = np.array([len(r) for r in rows])  # (K,)
    padded = np.zeros((len(rows), lengths.max()), dtype=np.int64)  # (K, L); pads are never read
    for k, row in enumerate(rows):
        padded[k, :len(row)] = row
    logp = token_logprobs(model, padded[:, :-1], padded[:, 1:])  # (K, L - 1)
    t = np.arange(logp.shape[1])  # (L - 1,): position t predicts token t + 1
    n_cont = np.array(n_cont)  # (K,)
    in_ending = (t >= (lengths - 1 - n_cont)[:, None]) & (t < (lengths - 1)[:, None])  # (K, L-1)
    return ChoiceScores(np.where(in_ending, logp, 0.0).sum(axis=1), n_cont,
                        np.array([len(e) for e in item.endings]), item.label)


def _fit(context, continuation, block_size, where):
    """context + continuation, the context cut from the left to fit block_size + 1 tokens
    (the inputs are all but the last token). At least one context token must remain."""
    if len(continuation) > block_size:
        raise EvaluationError(f"{where}: an ending of {len(continuation)} tokens leaves no "
                              f"room for context in block_size {block_size}")
    keep = block_size + 1 - len(continuation)
    return context[-keep:] + continuation


def tally(scores):
    """Count the items each rule answers right (ties go to the first ending).

    >>> s = ChoiceScores(np.array([-3.0, -4.0]), np.array([1, 4]), np.array([1, 4]), label=1)
    >>> tally([s])   # the sum prefers ending 0; per character and per token, ending 1
    ChoiceResult(items=1, correct=0, correct_norm=1, correct_token_mean=1)
    """
    right = np.zeros(3, dtype=np.int64)  # (3,): acc, acc_norm, acc_token_mean
    for s in scores:
        picks = [np.argmax(s.logprob), np.argmax(s.logprob / s.n_chars),
                 np.argmax(s.logprob / s.n_tokens)]
        right += np.array(picks) == s.label
    return ChoiceResult(len(scores), *(int(r) for r in right))


def evaluate_choices(model, tokenizer, items, progress=False):
    """Score every item (eval mode, no graph) and count the right answers under each rule."""
    model.eval()
    return tally([score_item(model, tokenizer, item)
                  for item in tqdm(items, unit="item", disable=not progress)])
