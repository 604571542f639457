"""Versioned JSON files: how tokenizers are saved so that people can read them and bad files fail.

Every file is one JSON object that starts with {"format": KIND, "version": N}. Reading checks the
JSON, the kind and the version before returning anything, and the tokenizer classes build their
object only from a fully checked dict, so a failed load never leaves a half-made tokenizer.
The longest field (a vocabulary, a merge list) is written one item per line, so `less` and
`git diff` show it usefully.

Tokenizer files may come from anywhere, so every tokenizer loader (these JSON files, tiktoken
rank files, GPT-2's encoder.json + vocab.bpe) raises one documented error for a malformed
file: `TokenizerError`, a ValueError. A file that cannot be opened raises OSError, as open does.

Leaves out: upgrading files of older versions (there is only version 1 so far).
"""
import json

import numpy as np


class TokenizerError(ValueError):
    """A tokenizer file or definition that cannot be used: not of the expected kind or version,
    or with fields of the wrong type, ids out of range, or pieces that do not fit together."""


def as_id(value):
    """`value` as a Python int if it is an integer (a NumPy one too), else TokenizerError: a
    float, bool or string id in a file is an error, not something to round or convert.

    >>> as_id(3), as_id(np.int64(4))
    (3, 4)
    >>> as_id(3.0)
    Traceback (most recent call last):
    ...
    tinyllm.tokenizer.json_file.TokenizerError: token id 3.0 is not an integer
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TokenizerError(f"token id {repr(value)[:40]} is not an integer")
    return int(value)


def write_versioned(path, kind, version, fields, list_field):
    """Write {"format": kind, "version": version, **fields}, `fields[list_field]` one item a line.

    For kind "demo", version 1, fields {"items": [1, 2]} and list_field "items" the file reads
        {"format": "demo", "version": 1,
         "items": [
          1,
          2
        ]}
    """
    header = {"format": kind, "version": version}
    header |= {k: v for k, v in fields.items() if k != list_field}
    items = ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in fields[list_field])
    text = (json.dumps(header, ensure_ascii=False)[:-1]  # drop the closing brace, then add the list
            + f",\n {json.dumps(list_field)}: [\n{items}\n]}}\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read_versioned(path, kind, version):
    """Read a file from `write_versioned`, checking its kind and version; raises TokenizerError.

    The returned dict is only known to be a JSON object with the right "format" and "version":
    the caller checks the type of every other field it uses.
    """
    data = read_json(path, f"a {kind} file")
    if not isinstance(data, dict) or data.get("format") != kind:
        raise TokenizerError(f"{path}: not a {kind} file")
    if data.get("version") != version or data["version"] is True:  # JSON true == 1 in Python
        raise TokenizerError(f"{path}: {kind} file version {repr(data.get('version'))[:40]}, "
                             f"this code reads version {version}")
    return data


def read_json(path, what):
    """The JSON document in `path`; TokenizerError (saying it is not `what`) if it is not one.

    Besides bad UTF-8 and bad syntax, that covers the JSON that Python's parser refuses for its
    own reasons: nesting too deep to recurse into, and integers of more than 4300 digits.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:  # ValueError: UnicodeDecodeError, JSONDecodeError
        raise TokenizerError(f"{path}: not {what} ({' '.join(str(e).split())[:200]})") from None
