"""Exact deduplication: drop a document (or a line) whose normalised text was seen before.

The same page crawled twice, a mirrored article, a licence pasted into every file: exact copies
are the commonest kind of duplicate, and a model trained on them memorises them and wastes
steps. Finding them needs no pairwise comparison. Each text is reduced to a *fingerprint*, a
64-bit hash of its normalised form, and a set of fingerprints answers "seen before?" in O(1).
The first occurrence is kept, every later one dropped.

Normalised form: case-folded, with every run of whitespace made one space. So "Hello  World"
and "hello world" are duplicates; "Hello, World" is not (punctuation counts here; the MinHash
stage in minhash.py is the one that forgives small differences).

Why 64 bits: with n distinct texts the chance that any two share a fingerprint is about
n^2 / 2^65, i.e. 3e-6 for ten million documents, and a Python int of 64 bits costs far less
memory than the text or a 32-byte digest.

Lines, optionally: CCNet (Wenzek et al. 2019) removes every line (its "paragraph") seen earlier
anywhere in the corpus, which strips the headers, menus and cookie notices repeated across
pages of one site. `drop_seen_lines` does that. Beware on verse or plays: in Tiny Shakespeare
the speaker lines ("GLOUCESTER:") repeat and would go.

Follows: CCNet's paragraph hashing; Lee et al. 2022 ("Deduplicating training data makes
language models better") for why it matters.
Leaves out: exact *substring* deduplication with suffix arrays (Lee et al.), which also
catches a repeated 50-token span inside otherwise different documents.
"""
import hashlib

from .clean import normalize_whitespace


def fingerprint(text):
    """A 64-bit integer hash of the case-folded, whitespace-collapsed text.

    >>> fingerprint("Hello  World") == fingerprint("hello world\\n")
    True
    >>> fingerprint("Hello, World") == fingerprint("hello world")
    False
    """
    normal = " ".join(text.casefold().split())
    digest = hashlib.blake2b(normal.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class SeenSet:
    """The fingerprints of every text shown to `first_time` so far.

    >>> seen = SeenSet()
    >>> [seen.first_time(t) for t in ["a b", "c", "A  B"]]
    [True, True, False]
    >>> len(seen)
    2
    """

    def __init__(self):
        self._fingerprints = set()

    def first_time(self, text):
        """True the first time this normalised text is shown, False ever after."""
        key = fingerprint(text)
        if key in self._fingerprints:
            return False
        self._fingerprints.add(key)
        return True

    def __len__(self):
        return len(self._fingerprints)


def drop_seen_lines(text, seen):
    """Remove the lines of `text` that `seen` has met before (in this or any earlier text).

    Blank lines are kept as paragraph breaks, then whitespace is tidied again, so the result is
    still a cleaned document (possibly empty).

    >>> seen = SeenSet()
    >>> drop_seen_lines("Menu\\nStory one.", seen)
    'Menu\\nStory one.'
    >>> drop_seen_lines("Menu\\nStory two.\\n\\nMenu", seen)
    'Story two.'
    """
    kept = [line for line in text.split("\n") if not line.strip() or seen.first_time(line)]
    return normalize_whitespace("\n".join(kept))
