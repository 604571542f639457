"""Instruction and preference data: Alpaca-style records read from untrusted files, then split.

An instruction record is a JSON object {"instruction", "input", "output"} (Taori et al., 2023,
Alpaca); "input" may be empty or absent. A preference record adds two answers to the same
prompt, "chosen" and "rejected", the pairs DPO learns from (dpo.py). A file is either one JSON
list of records or JSON Lines (one record per line; blank lines skipped); the first character
that is not white space tells which.

The defaults are the two files of Raschka's "Build a Large Language Model (From Scratch)",
chapter 7 (Apache-2.0): 1,100 instructions, and the same 1,100 with a polite "chosen" and an
impolite "rejected" answer. They are downloaded once into the cache and checked against their
sha256, as Tiny Shakespeare is (data/download.py); a local copy is given by path or by the
environment variables TINYLLM_INSTRUCTION_DATA and TINYLLM_PREFERENCE_DATA.

A local file is untrusted input: its size is checked before it is read, every record must be an
object whose fields are strings of bounded length, and an error names the file and the record
(or line) at fault. Unknown fields are ignored, so one file can serve both purposes.

The split is 85% train, 5% validation, 10% test, by a permutation drawn from a fixed seed that
depends only on the number of records. So it never changes between runs, and two files listing
the same prompts in the same order (the two defaults) split alike: the preference pairs held out
from DPO are the very instructions held out from SFT.
"""
import json
import os
from dataclasses import dataclass, fields

import numpy as np

from tinyllm.data.download import verified_file

MAX_FILE_BYTES = 1 << 30  # larger files are refused before reading: JSON parsing holds it all
MAX_FIELD_CHARS = 1 << 20  # a longer instruction or answer is taken for a corrupt file
SPLIT = (0.85, 0.05, 0.10)  # train, val, test
SPLIT_SEED = 0


class DataError(ValueError):
    """A data file is missing, too large, not JSON, or has a malformed record."""


@dataclass(frozen=True)
class Example:
    """One instruction-tuning example."""

    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class Preference:
    """One prompt with a preferred and a dispreferred answer."""

    instruction: str
    input: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class RemoteFile:
    """A public file the library downloads and verifies, and the variable naming a local copy."""

    filename: str
    url: str
    sha256: str
    env: str


_BOOK = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
INSTRUCTIONS = RemoteFile(
    "instruction-data.json", _BOOK + "01_main-chapter-code/instruction-data.json",
    "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
    "TINYLLM_INSTRUCTION_DATA")
PREFERENCES = RemoteFile(
    "instruction-data-with-preference.json",
    _BOOK + "04_preference-tuning-with-dpo/instruction-data-with-preference.json",
    "305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",
    "TINYLLM_PREFERENCE_DATA")


@dataclass(frozen=True)
class Splits:
    """Records split three ways (lists of Example or Preference)."""

    train: list
    val: list
    test: list


def data_path(remote, path=None):
    """`path` if given, else $<remote.env>, else the verified cached download."""
    return verified_file(path or os.environ.get(remote.env), remote.filename, remote.url,
                         remote.sha256, remote.env)


def load_instructions(path=None):
    """The Examples of an instruction file (default: INSTRUCTIONS; see data_path)."""
    return load_records(data_path(INSTRUCTIONS, path), Example)


def load_preferences(path=None):
    """The Preferences of a preference file (default: PREFERENCES; see data_path)."""
    return load_records(data_path(PREFERENCES, path), Preference)


def load_records(path, kind):
    """Read a JSON or JSON Lines file of records into a list of `kind` (Example, Preference).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = f.write_text('{"instruction": "Say hi.", "output": "Hi."}\\n')
    >>> load_records(f, Example)
    [Example(instruction='Say hi.', input='', output='Hi.')]
    """
    records = [_validated(path, where, raw, kind) for where, raw in _raw_records(path)]
    if not records:
        raise DataError(f"{path}: no records")
    return records


def _raw_records(path):
    """(where, parsed JSON value) for each record of the file: where is "record i" (a JSON
    list, from 0) or "line n" (JSON Lines, from 1), for error messages."""
    text = _read_text(path)
    try:
        if text.lstrip()[:1] == "[":
            return [(f"record {i}", r) for i, r in enumerate(json.loads(text))]
        return [(f"line {n}", json.loads(line)) for n, line in enumerate(text.splitlines(), 1)
                if line.strip()]
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: not valid JSON or JSON Lines ({e})") from None


def _read_text(path):
    size = os.stat(path).st_size
    if size > MAX_FILE_BYTES:
        raise DataError(f"{path}: {size:,} bytes is more than the {MAX_FILE_BYTES:,} allowed")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None


def _validated(path, where, raw, kind):
    """raw (a parsed JSON value) as a `kind`, or a DataError naming path and where."""
    if not isinstance(raw, dict):
        raise DataError(f"{path}, {where}: expected a JSON object, got {type(raw).__name__}")
    return kind(**{f.name: _field(raw, f.name, f"{path}, {where}") for f in fields(kind)})


def _field(raw, name, where):
    """raw[name], checked: a string of bounded length, non-blank unless it is "input" (which
    may also be absent: then it is "")."""
    if name not in raw and name != "input":
        raise DataError(f"{where}: field {name!r} is missing")
    value = raw.get(name, "")
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} is a {type(value).__name__}, not a string")
    if len(value) > MAX_FIELD_CHARS:
        raise DataError(f"{where}: field {name!r} is longer than {MAX_FIELD_CHARS:,} characters")
    if name != "input" and not value.strip():
        raise DataError(f"{where}: field {name!r} is empty")
    return value


def split(records, seed=SPLIT_SEED):
    """The 85/5/10 train/val/test Splits of `records` (at least 3), by a seeded permutation.

    Validation and test get round(5%) and round(10%) of the records, at least one each.
    >>> s = split(list(range(20)))
    >>> len(s.train), len(s.val), len(s.test)
    (17, 1, 2)
    """
    n = len(records)
    n_val, n_test = (max(1, round(f * n)) for f in SPLIT[1:])
    if n - n_val - n_test < 1:
        raise DataError(f"{n} records cannot be split into train, val and test; need >= 3")
    order = np.random.default_rng(seed).permutation(n)  # (n,)
    train, val, test = np.split(order, [n - n_val - n_test, n - n_test])
    return Splits(*([records[i] for i in part] for part in (train, val, test)))
