"""The preparation report: how many documents and bytes each stage took in and let through.

A data pipeline that silently drops half the corpus is a bug nobody sees until the model is
worse. So every stage counts what it received and what it passed on, in documents and in UTF-8
bytes, and a filter also counts *why* it removed each document (the quality rule's name). The
report prints as a table and is saved as JSON beside the token files; meta.json embeds it.

Tiny Shakespeare with `dedup=True, near_dup=0.8` (a document is a speech, see sources.py):

    stage              docs in    docs out     removed    bytes in   bytes out     removed
    clean                7,222       7,222           0   1,100,949   1,100,931        0.0%
    exact_dedup          7,222       7,146          76   1,100,931   1,100,004        0.1%
      duplicate                                     76
    near_dup             7,146       7,143           3   1,100,004   1,099,930        0.0%
      near duplicate                                 3

(Cleaning removes bytes, not documents, unless a document cleans to nothing.)

Leaves out: timings per stage and token counts per stage; bytes stand in for tokens, since
the removed text is never tokenized.
"""
import json
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class StageCount:
    """Counts for one stage; `removed_by` maps a reason to the documents it removed.

    >>> stage = StageCount("clean")
    >>> stage.record(12, 10); stage.record(5, None, reason="empty")
    >>> stage.docs_in, stage.docs_out, stage.bytes_in, stage.bytes_out, dict(stage.removed_by)
    (2, 1, 17, 10, {'empty': 1})
    """

    name: str
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    removed_by: Counter = field(default_factory=Counter)

    def record(self, bytes_in, bytes_out, reason=None):
        """One document: its size in, and its size out or None when the stage removed it."""
        self.docs_in += 1
        self.bytes_in += bytes_in
        if bytes_out is None:
            if reason:
                self.removed_by[reason] += 1
            return
        self.docs_out += 1
        self.bytes_out += bytes_out

    def to_dict(self):
        out = {k: getattr(self, k) for k in ("name", "docs_in", "docs_out", "bytes_in",
                                             "bytes_out")}
        out["docs_removed"] = self.docs_in - self.docs_out
        out["bytes_removed"] = self.bytes_in - self.bytes_out
        if self.removed_by:
            out["removed_by"] = dict(self.removed_by.most_common())
        return out


class Report:
    """The stages of one run, in order.

    >>> report = Report()
    >>> report.stage("clean").record(10, 8)
    >>> [s["bytes_removed"] for s in report.to_dict()]
    [2]
    """

    def __init__(self):
        self.stages = []

    def stage(self, name):
        """Start counting a new stage and return its StageCount."""
        self.stages.append(StageCount(name))
        return self.stages[-1]

    def to_dict(self):
        return [s.to_dict() for s in self.stages]

    def table(self):
        """The report as an aligned text table, one row per stage plus removal reasons."""
        head = ("stage", "docs in", "docs out", "removed", "bytes in", "bytes out", "removed")
        rows = [f"{head[0]:<14}" + "".join(f"{h:>12}" for h in head[1:])]
        for s in self.stages:
            share = (s.bytes_in - s.bytes_out) / s.bytes_in if s.bytes_in else 0.0
            numbers = (s.docs_in, s.docs_out, s.docs_in - s.docs_out, s.bytes_in, s.bytes_out)
            rows.append(f"{s.name:<14}" + "".join(f"{x:>12,}" for x in numbers)
                        + f"{share:>12.1%}")
            rows += [f"  {reason:<36}{n:>12,}" for reason, n in s.removed_by.most_common()]
        return "\n".join(rows)

    def write_json(self, path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
