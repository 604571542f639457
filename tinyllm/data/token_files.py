"""Token files: a tokenized corpus as flat binary arrays that training reads through np.memmap.

A prepared dataset is a folder:

    train.bin        token ids, native-endian uint16 (vocabulary <= 65,536) or uint32, no header
    val.bin          the same for the validation split
    meta.json        dtype, vocabulary size, separator, tokenizer, counts per split and stage
    tokenizer.json   the tokenizer itself, when it can save itself

Why flat files with no header: `np.memmap` maps a file into virtual memory and a batch
touches only the pages it reads, so a corpus larger than RAM trains without being loaded and
the operating system's page cache does the caching. nanoGPT's prepare scripts write the same
format; uint16 halves the size whenever the ids fit in 16 bits.

Separators: every document is followed by the separator, so the model sees where documents end
and learns not to run one into the next. It is the id given as `eot_id`, else the tokenizer's
"<|endoftext|>" special token, else, for a tokenizer with no such token (CharTokenizer), the
encoding of "\\n\\n". That fallback is deliberate: a character vocabulary has no spare id for a
control token, and adding one would change the model's vocabulary; a blank line is what
already separates documents read from a single text file (see sources.py), so for Tiny
Shakespeare the token stream is exactly the text.

The split: the last `val_fraction` of the tokens form val.bin, as in nanoGPT's
shakespeare_char, cut at the document boundary nearest that point, so no document is shared
between the splits. Only when that boundary would leave a split empty (a single document, say)
is the cut made inside the last document. A split's "documents" count is the number of
separators in it, i.e. the documents that end there.

Reading: a dataset folder may come from elsewhere, so `read_meta` checks every field it
returns that loading uses, and raises TokenFileError (a ValueError) for anything else. Only the
dtypes the writer produces are accepted (np.memmap with dtype "O" would read raw bytes as
object pointers, and crash the process), and a file that meta.json names (the tokenizer) must
lie inside the folder. `load_tokenizer` loads that tokenizer, and `open_tokens` a split.

Shapes: T tokens in a split.
Leaves out: shuffling documents before the split, sharding into many files, and the
batch sampler (batches.py samples from what `open_tokens` returns).
"""
import json
import os
from array import array
from pathlib import Path

import numpy as np

from ..tokenizer import TOKENIZERS

FORMAT = "tinyllm-tokens"
VERSION = 1
SPLITS = ("train", "val")
DTYPES = ("uint16", "uint32")  # what token_dtype gives; nothing else is ever read
EOT = "<|endoftext|>"
FALLBACK_SEPARATOR = "\n\n"
_FLUSH_TOKENS = 1 << 20  # tokens gathered in memory before they are written out
_COPY_TOKENS = 1 << 24  # tokens moved at a time from the end of train.bin to val.bin


class TokenFileError(ValueError):
    """A dataset folder that cannot be read: no or a corrupt meta.json, a dtype or field of the
    wrong kind, a token file of the wrong size, or a path leading out of the folder."""


def token_dtype(vocab_size):
    """uint16 when every id fits in 16 bits, else uint32.

    >>> token_dtype(50257), token_dtype(65536), token_dtype(65537)
    (dtype('uint16'), dtype('uint16'), dtype('uint32'))
    """
    if not 0 < vocab_size <= 1 << 32:
        raise ValueError(f"vocab_size {vocab_size} does not fit in uint32")
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def separator_ids(tokenizer, eot_id=None):
    """The ids written after each document (see the module docstring for the order of choice).

    >>> from tinyllm.tokenizer import CharTokenizer
    >>> separator_ids(CharTokenizer.from_text("ab\\n"))  # no <|endoftext|>: a blank line
    [0, 0]
    >>> separator_ids(CharTokenizer.from_text("ab\\n"), eot_id=2)
    [2]
    """
    if eot_id is not None:
        return [int(eot_id)]
    special = getattr(tokenizer, "special_tokens", None) or {}
    if EOT in special:
        return [int(special[EOT])]
    try:
        return list(encoder(tokenizer)(FALLBACK_SEPARATOR))
    except ValueError as e:
        raise ValueError(f"the tokenizer has no {EOT} token and cannot encode "
                         f"{FALLBACK_SEPARATOR!r} ({e}); pass eot_id") from None


def encoder(tokenizer):
    """The tokenizer's encode function that treats "<|endoftext|>" in the data as plain text.

    A document must not be able to forge a document boundary, so `encode_ordinary` (tiktoken's
    name, which BPETokenizer has) is preferred over `encode` when it exists.
    """
    return getattr(tokenizer, "encode_ordinary", tokenizer.encode)


def write_tokens(docs, out_dir, encode, vocab_size, separator, val_fraction=0.1):
    """Encode `docs` into out_dir/train.bin and val.bin; return the counts of each split.

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> docs = ["ab", "ba", "aa", "bb"]
    >>> write_tokens(docs, out, lambda s: [ord(c) - 97 for c in s], 3, [2], val_fraction=0.25)
    {'train': {'tokens': 9, 'documents': 3}, 'val': {'tokens': 3, 'documents': 1}}
    >>> open_tokens(out, "val", dtype="uint16").tolist()
    [1, 1, 2]
    """
    out_dir = Path(out_dir)
    dtype = token_dtype(vocab_size)
    train_path = out_dir / "train.bin"
    ends = _write_all(docs, train_path, encode, vocab_size, separator, dtype)
    n_tokens = ends[-1] if ends else 0
    cut, n_train_docs = _cut_point(ends, val_fraction)
    _move_tail(train_path, out_dir / "val.bin", cut, dtype.itemsize)
    return {"train": {"tokens": cut, "documents": n_train_docs},
            "val": {"tokens": n_tokens - cut, "documents": len(ends) - n_train_docs}}


def _write_all(docs, path, encode, vocab_size, separator, dtype):
    """Append each document's ids plus the separator to `path`; return the end offsets."""
    ends, pending, n_pending = array("q"), [], 0
    with open(path, "wb") as f:
        for doc in docs:
            ids = np.asarray(encode(doc) + separator, dtype=np.int64)  # (t,)
            pending.append(ids)
            n_pending += len(ids)
            ends.append((ends[-1] if ends else 0) + len(ids))
            if n_pending >= _FLUSH_TOKENS:
                _flush(f, pending, vocab_size, dtype)
                pending, n_pending = [], 0
        _flush(f, pending, vocab_size, dtype)
    return ends


def _flush(f, pending, vocab_size, dtype):
    if not pending:
        return
    ids = np.concatenate(pending)  # (t,)
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"token id {ids.max() if ids.max() >= vocab_size else ids.min()} "
                         f"is outside the vocabulary 0..{vocab_size - 1}")
    ids.astype(dtype).tofile(f)


def _cut_point(ends, val_fraction):
    """(tokens in train, documents in train): the document end nearest the target cut.

    >>> _cut_point(array("q", [3, 6, 10]), 0.3)  # target 7: the boundary at 6 is nearest
    (6, 2)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    total = ends[-1] if ends else 0
    target = round(total * (1.0 - val_fraction))
    k = int(np.argmin(np.abs(np.asarray(ends) - target))) if ends else 0
    if val_fraction > 0 and 0 < target < total and ends[k] in (0, total):
        return target, len(ends) - 1  # one document, or none fits: cut inside the last one
    return (ends[k], k + 1) if ends else (0, 0)


def _move_tail(train_path, val_path, cut, itemsize):
    """Move the tokens after `cut` from train.bin to val.bin, in chunks, then truncate."""
    with open(train_path, "rb") as src, open(val_path, "wb") as dst:
        src.seek(cut * itemsize)
        while chunk := src.read(_COPY_TOKENS * itemsize):
            dst.write(chunk)
    os.truncate(train_path, cut * itemsize)


def write_meta(out_dir, meta):
    """Write meta.json (adding the format tag and version)."""
    meta = {"format": FORMAT, "version": VERSION, **meta}
    with open(Path(out_dir) / "meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_meta(out_dir):
    """Read meta.json, checking it was written by `write_meta`: its format and version, a dtype
    from DTYPES that is token_dtype(vocab_size), and, when present, the tokenizer's entry
    (class, vocab_size, a file inside out_dir or null) and the separator ids."""
    path = Path(out_dir) / "meta.json"
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise TokenFileError(f"{out_dir}: no meta.json; not a folder `tinyllm prepare` "
                             "wrote") from None
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, too deep, too many digits
        raise TokenFileError(f"{path}: not JSON ({' '.join(str(e).split())[:200]})") from None
    header = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else None
    if header != (FORMAT, VERSION):
        raise TokenFileError(f"{path}: not a {FORMAT} v{VERSION} file")
    _check_meta_fields(meta, out_dir, path)
    return meta


def _check_meta_fields(meta, out_dir, path):
    vocab_size, dtype = meta.get("vocab_size"), meta.get("dtype")
    if not _is_count(vocab_size) or not 0 < vocab_size <= 1 << 32:
        raise TokenFileError(f"{path}: vocab_size {_short(vocab_size)} is not a vocabulary size")
    if dtype not in DTYPES or token_dtype(vocab_size) != dtype:
        raise TokenFileError(f"{path}: dtype {_short(dtype)} is not the dtype of {vocab_size} "
                             f"ids ({token_dtype(vocab_size)})")
    info = meta.get("tokenizer", {})
    if not isinstance(info, dict) or not isinstance(info.get("class", ""), str):
        raise TokenFileError(f"{path}: the 'tokenizer' entry is not {{class, vocab_size, file}}")
    if info.get("file") is not None:
        dataset_file(out_dir, info["file"])  # refuses a path that leads out of the folder
    separator = meta.get("separator", [])
    if not isinstance(separator, list) or not all(
            _is_count(i) and i < vocab_size for i in separator):
        raise TokenFileError(f"{path}: 'separator' is not a list of ids below {vocab_size}")


def dataset_file(out_dir, name):
    """The path of the file `name` (as meta.json gives it) in out_dir, resolved; TokenFileError
    if it is not a relative path that stays inside out_dir, symbolic links followed.

    >>> dataset_file("data", "tokenizer.json").name
    'tokenizer.json'
    >>> dataset_file("data", "../secret.json")
    Traceback (most recent call last):
    ...
    tinyllm.data.token_files.TokenFileError: data: the file '../secret.json' is outside the folder
    """
    folder = Path(out_dir).resolve()
    if not isinstance(name, str) or not name or "\0" in name:
        raise TokenFileError(f"{out_dir}: {_short(name)} is not a file name")
    path = (folder / name).resolve()
    if path == folder or not path.is_relative_to(folder):
        raise TokenFileError(f"{out_dir}: the file {_short(name)} is outside the folder")
    return path


def load_tokenizer(out_dir):
    """The tokenizer a dataset was prepared with, from its meta.json and tokenizer.json.

    read_meta has checked the entry's types and that its file lies inside out_dir; here the
    class must be one of ours and the loaded vocabulary the size meta.json records.
    """
    meta = read_meta(out_dir)
    info = meta.get("tokenizer") or {}
    if info.get("class") not in TOKENIZERS or info.get("file") is None:
        raise TokenFileError(f"{out_dir}: the tokenizer ({info.get('class')!r:.40}) was not "
                             "saved with the data, or is not one tinyllm can load")
    tokenizer = TOKENIZERS[info["class"]].load(dataset_file(out_dir, info["file"]))
    if tokenizer.vocab_size != meta["vocab_size"]:
        raise TokenFileError(f"{out_dir}: the tokenizer has {tokenizer.vocab_size} ids, "
                             f"meta.json says {meta['vocab_size']}")
    return tokenizer


def open_tokens(out_dir, split, dtype=None):
    """The token ids of `split` ("train" or "val") as a read-only memmap (T,).

    The dtype comes from meta.json unless given; either way it must be one of DTYPES. An empty
    split is an empty array, since np.memmap refuses empty files.
    """
    dtype = str(np.dtype(dtype)) if dtype is not None else read_meta(out_dir)["dtype"]
    if dtype not in DTYPES or split not in SPLITS:
        raise TokenFileError(f"token files are {SPLITS} of a dtype in {DTYPES}, "
                             f"not {_short(split)} of {_short(dtype)}")
    path = Path(out_dir) / f"{split}.bin"
    size = path.stat().st_size
    if size % np.dtype(dtype).itemsize:
        raise TokenFileError(f"{path}: {size} bytes is not a whole number of {dtype} ids")
    if size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _is_count(value):
    return type(value) is int and value >= 0  # `is`: JSON true and 3.0 are not counts


def _short(value):
    return repr(value)[:60]
