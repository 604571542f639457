"""Versioned JSON files: how tokenizers are saved so that people can read them and bad files fail.

Every file is one JSON object that starts with {"format": KIND, "version": N}. Reading checks the
JSON, the kind and the version before returning anything, and the tokenizer classes build their
object only from a fully checked dict, so a failed load never leaves a half-made tokenizer.
The longest field (a vocabulary, a merge list) is written one item per line, so `less` and
`git diff` show it usefully.

Leaves out: upgrading files of older versions (there is only version 1 so far).
"""
import json


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
    """Read a file from `write_versioned`, checking its kind and version; raises ValueError."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a {kind} file ({e})") from None
    if not isinstance(data, dict) or data.get("format") != kind:
        raise ValueError(f"{path}: not a {kind} file")
    if data.get("version") != version:
        raise ValueError(f"{path}: {kind} file version {data.get('version')!r}, "
                         f"this code reads version {version}")
    return data
