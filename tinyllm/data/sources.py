"""Where documents come from: one text file, a folder of text files, or JSON Lines.

A *document* is the unit every later stage works on: cleaning maps one document to one
document, deduplication keeps or drops whole documents, and the token files put an end-of-text
separator after each one. So what counts as a document decides what deduplication can find:

- a folder: every `*.txt` file below it (recursively, paths sorted component by component)
  is one document;
- a `.jsonl` file: every line is a JSON object and its "text" field is one document;
- any other file: one document per *block*, a run of lines ended by one or more blank lines.

Why blocks for a single file? Taken whole, a single file is one document and deduplication has
nothing to compare. Blocks are the unit that repeats inside one file (a licence paragraph, a
stage direction, a boilerplate footer), and they are also what a blank line already means in
prose. In Tiny Shakespeare a block is one speech (a speaker's name line, then the lines spoken),
about 7,200 of them; joining the blocks with "\\n\\n" gives back the file (the token files'
fallback separator for tokenizers without an end-of-text token is exactly that).

Everything streams: a block or a file or a JSONL line is held only while it is yielded.
Bytes that are not valid UTF-8 become U+FFFD rather than stopping a long run.

Leaves out: compressed inputs (.gz, .zst), other JSONL field names, and Parquet.
"""
import hashlib
import json
from pathlib import Path

_CHUNK = 1 << 20  # bytes read at a time when hashing


def iter_documents(src):
    """Yield the documents of a folder, a .jsonl file or a text file, one string at a time.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "two.txt")
    >>> _ = open(path, "w").write("First block,\\nline two.\\n\\n\\nSecond block.\\n")
    >>> list(iter_documents(path))
    ['First block,\\nline two.', 'Second block.']
    """
    path = Path(src)
    if path.is_dir():
        return folder_documents(path)
    if path.suffix == ".jsonl":
        return jsonl_documents(path)
    return block_documents(path)


def block_documents(path):
    """Yield the blank-line-separated blocks of a text file (a blank line is only whitespace)."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                lines.append(line)
            elif lines:
                yield "".join(lines).rstrip("\n")
                lines = []
    if lines:
        yield "".join(lines).rstrip("\n")


def folder_documents(path):
    """Yield the contents of each `*.txt` file below `path`, in sorted path order."""
    for file in text_files(path):
        yield file.read_text(encoding="utf-8", errors="replace")


def jsonl_documents(path):
    """Yield the "text" field of each line of a JSON Lines file (blank lines are skipped)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as e:  # a torn or hand-edited line: say where
                raise ValueError(f"{path}:{number}: not a JSON line ({e})") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"{path}:{number}: expected an object with a string 'text'")
            yield text


def text_files(path):
    """The `*.txt` files below a folder, sorted, so every run reads them in the same order."""
    return sorted(p for p in Path(path).rglob("*.txt") if p.is_file())


def source_sha256(src):
    """SHA-256 of what `iter_documents` reads: the file, or for a folder each file's relative
    path and bytes in order, so renaming or editing any file changes the digest.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("abc")
    >>> source_sha256(path)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(src)
    digest = hashlib.sha256()
    if not path.is_dir():
        _hash_file(digest, path)
        return digest.hexdigest()
    for file in text_files(path):
        # the length prefix keeps ("ab", "c") and ("a", "bc") apart
        name = file.relative_to(path).as_posix().encode()
        digest.update(len(name).to_bytes(8, "little") + name)
        digest.update(file.stat().st_size.to_bytes(8, "little"))
        _hash_file(digest, file)
    return digest.hexdigest()


def _hash_file(digest, path):
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
