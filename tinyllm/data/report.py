"""The preparation report: how many documents, bytes and tokens each stage took in and let through.

A data pipeline that silently drops half the corpus is a bug nobody sees until the model is
worse. So every stage counts what it received and what it passed on, in documents, UTF-8 bytes
and tokens, and a filter also counts *why* it removed each document (the quality rule's name).
The report prints as a table and is saved as JSON beside the token files; meta.json embeds it.

Two passes fill it in. Documents, bytes and reasons are counted as the stages run (`record`).
Tokens can only be counted once the tokenizer exists, and "char" or "bpe:VOCAB" is built from
the text the stages kept, so a later pass runs the stages again and measures in tokens
(`record_tokens`; pass 3 in pipeline.py). Token counts leave out the separators the token files
put after each document.

Tiny Shakespeare with `dedup=True, near_dup=0.8` and the "char" tokenizer (a document is a
speech, see sources.py). A token is a character and the text is ASCII, so tokens equal bytes
here; a BPE tokenizer would show fewer tokens than bytes.

                       documents                    bytes                         tokens
    stage             in     out removed         in        out removed         in        out removed
    clean          7,222   7,222       0  1,100,949  1,100,931    0.0%  1,100,949  1,100,931    0.0%
    exact_dedup    7,222   7,146      76  1,100,931  1,100,004    0.1%  1,100,931  1,100,004    0.1%
      duplicate                       76
    near_dup       7,146   7,143       3  1,100,004  1,099,930    0.0%  1,100,004  1,099,930    0.0%
      near duplicate                   3

(Cleaning removes bytes, not documents, unless a document cleans to nothing.)

Leaves out: timings per stage.
"""
import json
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class StageCount:
    """Counts for one stage; `removed_by` maps a reason to the documents it removed.

    >>> stage = StageCount("clean")
    >>> stage.record(12, 10); stage.record(5, None, reason="empty")
    >>> stage.record_tokens(4, 3); stage.record_tokens(2, None)
    >>> stage.docs_in, stage.docs_out, stage.bytes_in, stage.bytes_out, dict(stage.removed_by)
    (2, 1, 17, 10, {'empty': 1})
    >>> stage.tokens_in, stage.tokens_out
    (6, 3)
    """

    name: str
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    removed_by: Counter = field(default_factory=Counter)

    def record(self, bytes_in, bytes_out, reason=None):
        """One document: its bytes in, and its bytes out or None when the stage removed it."""
        self.docs_in += 1
        self.bytes_in += bytes_in
        if bytes_out is None:
            if reason:
                self.removed_by[reason] += 1
            return
        self.docs_out += 1
        self.bytes_out += bytes_out

    def record_tokens(self, tokens_in, tokens_out, reason=None):
        """The same document measured in tokens by the later pass, tokens_out None if removed.

        `reason` is accepted so that both passes call the stages alike, and ignored: `record`
        has counted it already.
        """
        self.tokens_in += tokens_in
        if tokens_out is not None:
            self.tokens_out += tokens_out

    def to_dict(self):
        """The counts as meta.json stores them: in, out and removed per unit, then reasons."""
        out = {"name": self.name}
        for unit in ("docs", "bytes", "tokens"):
            n_in, n_out = getattr(self, f"{unit}_in"), getattr(self, f"{unit}_out")
            out |= {f"{unit}_in": n_in, f"{unit}_out": n_out, f"{unit}_removed": n_in - n_out}
        if self.removed_by:
            out["removed_by"] = dict(self.removed_by.most_common())
        return out


class Report:
    """The stages of one run, in order.

    >>> report = Report()
    >>> report.stage("clean").record(10, 8)
    >>> report["clean"].record_tokens(5, 4)
    >>> [(s["bytes_removed"], s["tokens_removed"]) for s in report.to_dict()]
    [(2, 1)]
    """

    def __init__(self):
        self.stages = []

    def stage(self, name):
        """Start counting a new stage and return its StageCount."""
        self.stages.append(StageCount(name))
        return self.stages[-1]

    def __getitem__(self, name):
        """The StageCount of the stage called `name`."""
        return {s.name: s for s in self.stages}[name]

    def to_dict(self):
        return [s.to_dict() for s in self.stages]

    def table(self):
        """The report as an aligned text table: a row per stage, then its removal reasons.

        Documents removed is a count; bytes and tokens removed are a share of what came in.
        """
        rows = [f"{'':12}{'documents':^24}{'bytes':^30}{'tokens':^30}".rstrip(),
                f"{'stage':<12}{'in':>8}{'out':>8}{'removed':>8}"
                + 2 * f"{'in':>11}{'out':>11}{'removed':>8}"]
        for s in self.stages:
            rows.append(f"{s.name:<12}{s.docs_in:>8,}{s.docs_out:>8,}{s.docs_in - s.docs_out:>8,}"
                        + _sizes(s.bytes_in, s.bytes_out) + _sizes(s.tokens_in, s.tokens_out))
            rows += [f"  {reason:<26}{n:>8,}" for reason, n in s.removed_by.most_common()]
        return "\n".join(rows)

    def write_json(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


def _sizes(n_in, n_out):
    """Three table columns: a size in, out, and the share of it removed."""
    share = (n_in - n_out) / n_in if n_in else 0.0
    return f"{n_in:>11,}{n_out:>11,}{share:>8.1%}"
