"""The spool: documents written once to a scratch file and read back, in order or by index.

The pipeline needs the filtered documents a second time. Near-duplicate removal can decide
which to keep only after every signature is known, and a tokenizer built from the data
("char", "bpe:N") can only be built once the kept text is known. Holding the documents as
Python strings would cost a few times their size in memory; reading the source again would
repeat the cleaning and filtering. So they are appended, UTF-8 encoded, to one file, and the
only thing kept in memory is each document's end offset (8 bytes per document, in an
`array`). Reading them all in order is one sequential scan; document i is one seek away, which
is what verifying a near-duplicate candidate pair needs.

Leaves out: compression, and surviving a crash (the file is scratch space, deleted on close).
"""
from array import array
from pathlib import Path


class Spool:
    """An append-only list of strings that lives in a file; use it as a context manager.

    >>> import tempfile, os
    >>> with Spool(os.path.join(tempfile.mkdtemp(), "docs.tmp")) as spool:
    ...     spool.append("first"); spool.append("sécond")
    ...     list(spool), spool[1], spool.nbytes(1), len(spool)
    (['first', 'sécond'], 'sécond', 7, 2)
    """

    def __init__(self, path):
        self.path = Path(path)
        self._file = open(self.path, "w+b")
        self._ends = array("q")  # byte offset where each document ends

    def append(self, text):
        data = text.encode("utf-8")
        self._file.seek(0, 2)  # a read may have moved the position
        self._file.write(data)
        self._ends.append(self._start(len(self._ends)) + len(data))

    def __len__(self):
        return len(self._ends)

    def nbytes(self, i):
        """Size of document i in UTF-8 bytes."""
        return self._ends[i] - self._start(i)

    def __getitem__(self, i):
        self._file.flush()
        self._file.seek(self._start(i))
        return self._file.read(self.nbytes(i)).decode("utf-8")

    def __iter__(self):
        self._file.flush()
        with open(self.path, "rb") as f:  # a second handle: iteration may interleave with [i]
            for i in range(len(self)):
                yield f.read(self.nbytes(i)).decode("utf-8")

    def _start(self, i):
        return self._ends[i - 1] if i > 0 else 0

    def close(self):
        """Close and delete the scratch file."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
