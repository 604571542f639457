"""A multiple-choice task built from a play's own text: which line comes next?

`shakespeare-next-line` turns a validation text into questions without any labelled data:
the context is a few consecutive lines, the right ending is the line that follows them, and
the wrong endings are lines from elsewhere in the same text, of similar length (so the
length alone gives nothing away) and different from the right one. A character model that has
learnt verse, speaker turns and some grammar beats the 1-in-4 of guessing; it is a small,
reproducible stand-in for HellaSwag that a model trained for minutes can be measured on.

Built only from the text it is given, which must be the validation split: then no item can
contain a line the model trained on. The split starts and ends at arbitrary characters, so
the first and last (possibly partial) lines are never used. Building is deterministic for a
given seed: the same text and seed give the same items.

Leaves out: harder distractors (lines by the same speaker, or the model's own samples, as
HellaSwag's adversarial filtering does).
"""
import numpy as np

from tinyllm.choices import ChoiceItem
from tinyllm.evaluate import EvaluationError

NAME = "shakespeare-next-line"
MIN_CHARS = 12  # a right line at least this long: not a blank line or a speaker's name alone


def next_line_items(text, n_items=200, seed=0, n_context=3, n_choices=4):
    """n_items ChoiceItems: n_context lines, then n_choices candidate next lines.

    >>> text = "\\n".join(f"line number {i:02d} of the play" for i in range(40))
    >>> item = next_line_items(text, n_items=1, seed=0)[0]
    >>> item.context.count("\\n") + 1, len(item.endings), item.separator == "\\n"
    (3, 4, True)
    >>> item.context + "\\n" + item.endings[item.label] in text
    True
    """
    lines = text.split("\n")
    rng = np.random.default_rng(seed)
    first = 1 + n_context  # line 0 may be partial and must not be in a context either
    targets = [i for i in range(first, len(lines) - 1) if len(lines[i]) >= MIN_CHARS]
    items = []
    for i in rng.permutation(targets):
        distractors = _distractors(lines, int(i), n_context)
        if len(distractors) >= n_choices - 1:
            items.append(_item(lines, int(i), distractors, n_context, n_choices, rng))
            if len(items) == n_items:
                return items
    raise EvaluationError(f"the text gives only {len(items)} of the {n_items} items asked for "
                          f"({len(lines)} lines); ask for fewer")


def _distractors(lines, i, n_context):
    """The distinct lines of similar length to line i (within a fifth, at least 3 characters),
    different from it, and not from its own neighbourhood (context, itself, the next line)."""
    true = lines[i]
    slack = max(3, len(true) // 5)
    near = range(i - n_context, i + 2)
    found = (line for j, line in enumerate(lines[1:-1], start=1)
             if j not in near and line != true and abs(len(line) - len(true)) <= slack)
    return list(dict.fromkeys(found))  # distinct, in the order of the text: deterministic


def _item(lines, i, distractors, n_context, n_choices, rng):
    """A ChoiceItem for line i with n_choices - 1 of the distractors, the true line placed at a
    random position."""
    picked = rng.choice(len(distractors), size=n_choices - 1, replace=False)  # (n_choices - 1,)
    endings = [distractors[k] for k in picked]
    label = int(rng.integers(n_choices))
    endings.insert(label, lines[i])
    context = "\n".join(lines[i - n_context:i])
    return ChoiceItem(context, tuple(endings), label, separator="\n", where=f"{NAME} line {i}")
