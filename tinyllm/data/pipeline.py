"""`prepare`: raw text in, token files out, every stage counted.

    source -> clean -> [exact dedup] -> [line dedup] -> [quality] -> spool --+
                                                                               |
    token files <- tokenize <- [tokenizer built from the data] <- [near dup] <-+

    source -> the same stages, measured in tokens -> [near dup keep mask] -> report

Pass 1 streams the source through the per-document stages, which are generators chained one
into the next, so one document is in flight at a time. Survivors go to the spool (spool.py);
when near-duplicate removal is on, their MinHash signatures are computed in batches on the way
(N x K uint32, 512 bytes per document at K = 128). Between the passes, LSH decides which
documents to keep, and a tokenizer given as "char" or "bpe:VOCAB" is built from the kept text.
Pass 2 reads the kept documents back from the spool and writes the token files.

Pass 3 counts the tokens each stage took in and let through, which pass 1 could not do: the
tokenizer did not exist yet. It streams the source through the same per-document stages again
(they are deterministic, and get fresh SeenSets), measuring each text in tokens where pass 1
measured bytes. Near-duplicate removal is not redone: the documents leaving the per-document
stages are the spooled ones, in the same order, so the keep mask says which of them it let
through. The price is running the cheap stages and the encoder once more (MinHash is not
repeated); in exchange nothing is stored per stage. Token counts leave out the separators, so
the last stage's tokens_out + docs_out * len(separator) is exactly the number of tokens in
train.bin and val.bin together.

The order matters: cleaning first, so that deduplication compares what will be trained on;
exact deduplication before MinHash, because identical documents would all fall into the same
LSH bucket and make quadratic work; the quality rules before MinHash, so signatures are not
spent on documents about to be dropped.

Leaves out: parallel workers (datatrove, NeMo Curator), resuming an interrupted run, and
mixing several sources with weights.
"""
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..tokenizer import TOKENIZERS, BPETokenizer, CharTokenizer, load_any
from .clean import clean
from .exact_dedup import SeenSet, drop_seen_lines
from .lsh import near_duplicate_mask
from .minhash import shingle_hashes, signatures
from .quality import QualityRules, check
from .report import Report
from .sources import iter_documents, source_sha256
from .spool import Spool
from .token_files import EOT, encoder, separator_ids, token_dtype, write_meta, write_tokens

_BATCH = 1024  # documents per signatures() call


@dataclass(frozen=True)
class PrepareOptions:
    """Which stages `prepare` runs and how; meta.json records these as its "settings"."""

    dedup: bool = False  # drop exact duplicate documents (exact_dedup.py)
    dedup_lines: bool = False  # drop every line seen before in an earlier document (CCNet)
    quality: QualityRules | None = None  # the Gopher rules' thresholds (quality.py); None: off
    near_dup: float | None = None  # Jaccard threshold in (0, 1), e.g. 0.8, or None: off
    num_perm: int = 128  # MinHash permutations K; more estimate the Jaccard more precisely
    shingle_size: int = 5  # n of the n-grams (shingles) whose sets MinHash compares
    shingle_unit: str = "word"  # what a shingle counts: "word" or "char"
    val_fraction: float = 0.1  # the share of tokens held out as val.bin, in [0, 1)
    eot_id: int | None = None  # the separator id; None: <|endoftext|> or "\n\n" (token_files)
    bpe_sample_bytes: int = 50_000_000  # how much kept text "bpe:VOCAB" trains on

    def __post_init__(self):  # checked here, before an hour of pass 1, not after it
        if self.near_dup is not None and not 0.0 < self.near_dup < 1.0:
            raise ValueError(f"near_dup is a Jaccard threshold in (0, 1), not {self.near_dup}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), not {self.val_fraction}")


def prepare(src, out_dir, tokenizer="char", options=PrepareOptions(), progress=True):
    """Clean, filter and tokenize `src` into out_dir/{train.bin, val.bin, meta.json}.

    tokenizer: an object with encode(str) -> list[int] and vocab_size, or "char", "bpe:VOCAB"
    (built from the kept text) or the path of a saved CharTokenizer or BPETokenizer.
    options: the stages to run (PrepareOptions). Returns the metadata also written to
    meta.json, with the report under "stages": each stage's documents, bytes and tokens in and
    out (report.py), and the options under "settings".

    >>> import tempfile, os
    >>> src = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(src, "w").write("To be.\\n\\nOr not.\\n\\nTo  be.\\n")
    >>> options = PrepareOptions(dedup=True, val_fraction=0.5)
    >>> meta = prepare(src, tempfile.mkdtemp(), "char", options, progress=False)
    >>> [(s["name"], s["docs_out"], s["tokens_out"]) for s in meta["stages"]]
    [('clean', 3, 19), ('exact_dedup', 2, 13)]
    >>> meta["splits"]  # 13 tokens of text and two separators of 2 tokens ("\\n\\n")
    {'train': {'tokens': 8, 'documents': 1}, 'val': {'tokens': 9, 'documents': 1}}
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    with Spool(out_dir / "documents.spool") as spool:
        docs = _filtered(_read(src, "read", progress), lambda name: report.stage(name).record,
                         _nbytes, options)
        sigs = _spool(docs, spool, options)
        keep, near_stats = _near_dup(spool, sigs, report, options)
        tok = resolve_tokenizer(tokenizer, _kept(spool, keep), options.bpe_sample_bytes)
        separator = separator_ids(tok, options.eot_id)
        n_kept = len(spool) if keep is None else int(keep.sum())
        if n_kept == 0:  # else an empty tokenizer and token files would look like success
            raise ValueError(f"{src}: no document is left to tokenize (empty, or all filtered)")
        kept = tqdm(_kept(spool, keep), desc="tokenize", total=n_kept, unit="doc",
                    disable=not progress)
        splits = write_tokens(kept, out_dir, encoder(tok), tok.vocab_size, separator,
                              options.val_fraction)
    _count_tokens(src, report, keep, _token_counter(tok), options, progress)
    meta = _meta(src, tok, _save_tokenizer(tok, out_dir), separator, splits, report,
                 near_stats)
    # what makes the run repeatable: the tokenizer as named (an object has no name) + options
    named = str(tokenizer) if isinstance(tokenizer, (str, Path)) else None
    meta["settings"] = {"tokenizer": named, **asdict(options)}
    write_meta(out_dir, meta)
    report.write_json(out_dir / "report.json")
    if progress:
        print(report.table())
    return meta


def _read(src, desc, progress, total=None):
    return tqdm(iter_documents(src), desc=desc, total=total, unit="doc", disable=not progress)


def _filtered(docs, recorder, size, options):
    """Chain the per-document stages as generators; yield the documents that pass them all.

    Each stage reports every document it takes in to record = recorder(its name), as
    record(size(text in), size(text out) or None if removed, reason). `size` is what the pass
    measures: UTF-8 bytes in pass 1, tokens in pass 3.
    """
    docs = _stage(docs, recorder("clean"), size, lambda d: (clean(d), "empty"))
    if options.dedup:
        seen = SeenSet()
        docs = _stage(docs, recorder("exact_dedup"), size,
                      lambda d: (d if seen.first_time(d) else None, "duplicate"))
    if options.dedup_lines:
        seen_lines = SeenSet()
        docs = _stage(docs, recorder("line_dedup"), size,
                      lambda d: (drop_seen_lines(d, seen_lines), "every line seen before"))
    if options.quality is not None:
        docs = _stage(docs, recorder("quality"), size, _quality_judge(options.quality))
    return docs


def _stage(docs, record, size, fn):
    """Yield the documents `fn` keeps. fn(doc) -> (text or None, why it would be removed)."""
    for doc in docs:
        out, reason = fn(doc)
        record(size(doc), size(out) if out else None, reason)
        if out:
            yield out


def _quality_judge(rules):
    def judge(doc):
        rule = check(doc, rules)
        return (None if rule else doc), rule

    return judge


def _nbytes(text):
    return len(text.encode("utf-8", "surrogatepass"))


def _spool(docs, spool, options):
    """Append docs to the spool; with near_dup on, return their signatures (N, K), else None."""
    if options.near_dup is None:
        for doc in docs:
            spool.append(doc)
        return None
    sign = partial(signatures, num_perm=options.num_perm, n=options.shingle_size,
                   unit=options.shingle_unit)
    batches, batch = [], []  # only one batch of documents is held as strings at a time
    for doc in docs:
        spool.append(doc)
        batch.append(doc)
        if len(batch) == _BATCH:
            batches.append(sign(batch))
            batch = []
    batches.append(sign(batch))
    return np.concatenate(batches)  # (N, K)


def _near_dup(spool, sigs, report, options):
    """The keep mask (N,) and LSH statistics, or (None, None) when near_dup is off."""
    if sigs is None:
        return None, None
    shingles = partial(shingle_hashes, n=options.shingle_size, unit=options.shingle_unit)
    mask, stats = near_duplicate_mask(sigs, lambda i: shingles(spool[i]), options.near_dup)
    _record_near_dup(report.stage("near_dup").record, map(spool.nbytes, range(len(spool))), mask)
    return mask, {"threshold": options.near_dup, "num_perm": sigs.shape[1], **stats}


def _record_near_dup(record, sizes, keep):
    """Count the near_dup stage from its keep mask (N,), given the documents' sizes."""
    for size, kept in zip(sizes, keep, strict=True):  # strict: pass 3 must meet pass 1's N
        record(size, size if kept else None, "near duplicate")


def _kept(spool, keep):
    return (doc for i, doc in enumerate(spool) if keep is None or keep[i])


def _count_tokens(src, report, keep, count, options, progress):
    """Pass 3: the source through the stages again, adding count(text) tokens to the report."""
    docs = _read(src, "count tokens", progress, total=report["clean"].docs_in)
    docs = _filtered(docs, lambda name: report[name].record_tokens, count, options)
    if keep is None:
        for _ in docs:  # the stages count as the documents flow through them
            pass
    else:
        _record_near_dup(report["near_dup"].record_tokens, map(count, docs), keep)


def _token_counter(tok):
    """A function text -> its number of tokens, as write_tokens would encode it.

    Text the stages removed was never meant to be encoded, and may not be encodable: a "char"
    vocabulary, built from the kept text, lacks characters that occur only in removed text, and
    raw text may hold lone surrogates that cleaning deletes and UTF-8 cannot express. Such a
    text counts one token per character: exact for a character tokenizer, an estimate otherwise.
    """
    encode = encoder(tok)

    @lru_cache(maxsize=1)  # a document a stage lets through unchanged is encoded only once
    def count(text):
        try:
            return len(encode(text))
        except ValueError:
            return len(text)

    return count


def resolve_tokenizer(spec, docs, bpe_sample_bytes=50_000_000):
    """A tokenizer object from `spec`: an object is returned as is; "char" and "bpe:VOCAB" are
    built from `docs`; anything else is the path of a saved CharTokenizer or BPETokenizer.

    "char": the sorted characters of all documents, plus "\\n" for the separator.
    "bpe:VOCAB": BPE trained on the first bpe_sample_bytes of the documents (joined by blank
    lines), with <|endoftext|> as its last id.

    >>> resolve_tokenizer("char", ["ba", "c"]).chars
    ['\\n', 'a', 'b', 'c']
    """
    if not isinstance(spec, (str, Path)):
        return spec
    if spec == "char":
        chars = {"\n"}
        for doc in docs:
            chars.update(doc)
        return CharTokenizer(sorted(chars))
    if isinstance(spec, str) and spec.startswith("bpe:"):
        text = _sample(docs, bpe_sample_bytes)
        return BPETokenizer.train(text, int(spec[4:]), special_tokens=[EOT])
    return _load_saved(Path(spec))


def _sample(docs, max_bytes):
    """The first documents, joined by blank lines, up to about max_bytes of UTF-8."""
    parts, size = [], 0
    for doc in docs:
        if size >= max_bytes:
            break
        parts.append(doc)
        size += _nbytes(doc) + 2
    return "\n\n".join(parts)


def _load_saved(path):
    if not path.is_file():
        raise ValueError(f"tokenizer {str(path)!r}: not 'char', 'bpe:VOCAB' or a saved file")
    return load_any(path)


def _save_tokenizer(tok, out_dir):
    """Save one of our tokenizers beside the token files; return the file name, or None."""
    if type(tok).__name__ not in TOKENIZERS:
        return None
    tok.save(out_dir / "tokenizer.json")
    return "tokenizer.json"


def _meta(src, tok, tokenizer_file, separator, splits, report, near_stats):
    return {
        "dtype": token_dtype(tok.vocab_size).name,
        "vocab_size": tok.vocab_size,
        "separator": separator,
        "tokenizer": {"class": type(tok).__name__, "vocab_size": tok.vocab_size,
                      "file": tokenizer_file},
        "splits": splits,
        "stages": report.to_dict(),
        "near_dup": near_stats,
        "source": {"path": str(src), "sha256": source_sha256(src)},
    }
