"""Fetching OpenAI's GPT-2 from the Hugging Face Hub into the tinyllm cache, resumably.

Each model is four files (hf.py reads them): config.json, model.safetensors (0.5 GB for gpt2,
6.4 GB for gpt2-xl), vocab.json and merges.txt, fetched from
`https://huggingface.co/openai-community/{name}/resolve/main/{file}` into
`<cache>/huggingface/{name}/` (the cache of data/download.py: $TINYLLM_CACHE, else
$XDG_CACHE_HOME/tinyllm, else ~/.cache/tinyllm).

A large download is often cut off, so bytes go to `{file}.part` first. Running again asks the
server only for the rest (an HTTP Range request, `Range: bytes=N-`, answered with 206 Partial
Content) and appends it. The file gets its real name only once its size equals the size the
server announced (Content-Range, else Content-Length), so a file under its real name is whole
and is never fetched again.

Left out: checksums (the Hub's redirect carries one, but urllib follows redirects silently)
and parallel or chunked transfer.
"""
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from tinyllm.data.download import cache_dir
from tinyllm.hf import CONFIG, MERGES, VOCAB, WEIGHTS

MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")  # 124M, 350M, 774M, 1558M params
FILES = (CONFIG, VOCAB, MERGES, WEIGHTS)  # small ones first: a bad name fails fast
HUB_URL = "https://huggingface.co/openai-community/{name}/resolve/main/{file}"


class DownloadError(RuntimeError):
    """A download that failed (offline, refused, cut short); the message says what to do."""


def download_gpt2(name, cache_root=None, progress=True):
    """The folder holding GPT-2 `name` (one of MODELS), downloading what is missing first.

    Usage: `load_gpt2(download_gpt2("gpt2"))` (hf.py) is OpenAI's 124M model and tokenizer.
    Offline, it raises DownloadError saying which files to put where.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    folder = Path(cache_root or cache_dir()) / "huggingface" / name
    folder.mkdir(parents=True, exist_ok=True)
    for file in FILES:
        if (folder / file).is_file():
            continue
        url = HUB_URL.format(name=name, file=file)
        try:
            fetch_resumable(url, folder / file, progress)
        except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
            raise DownloadError(
                f"could not download {url} ({e}). Offline, put {', '.join(FILES)} of "
                f"https://huggingface.co/openai-community/{name} into {folder} (or any "
                "folder, and pass that folder as --checkpoint)") from None
    return folder


def fetch_resumable(url, dest, progress=False):
    """Download `url` to `dest`, continuing a `dest.part` left by an earlier attempt.

    Raises DownloadError if the bytes received do not add up to the announced size (run
    again to resume), OSError (URLError, HTTPError) if the server cannot be reached or refuses.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=30)
    except urllib.error.HTTPError as e:
        if e.code != 416:
            raise
        # 416 Range Not Satisfiable: nothing lies past byte `have`. If that is the announced
        # size, the .part is whole; else it is longer than the file: start afresh.
        if _announced_size(e.headers, 0) != have:
            part.unlink()
            return fetch_resumable(url, dest, progress)
        os.replace(part, dest)
        return
    with response:
        if response.status != 206:  # the server ignored Range and sends it all: start over
            have = 0
        size = _announced_size(response.headers, have)
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=size, initial=have, unit="B", unit_scale=True, desc=dest.name,
                disable=not progress) as bar:
            shutil.copyfileobj(_Counted(response, bar), f, 1 << 20)
    got = part.stat().st_size
    if size is not None and got != size:
        raise DownloadError(f"{url}: received {got} of {size} bytes; run again to resume")
    os.replace(part, dest)


def _announced_size(headers, have):
    """The whole file's size: `Content-Range: bytes 100-999/1000` (or `bytes */1000` when
    refusing a range) gives 1000; else Content-Length counts the bytes after `have`.

    >>> _announced_size({"Content-Range": "bytes 100-999/1000"}, 100)
    1000
    >>> _announced_size({"Content-Length": "900"}, 100), _announced_size({}, 0)
    (1000, None)
    """
    match = re.fullmatch(r"bytes (\d+-\d+|\*)/(\d+)", headers.get("Content-Range") or "")
    if match:
        return int(match.group(2))
    length = headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


class _Counted:
    """A file-like wrapper that advances a progress bar by the bytes read through it."""

    def __init__(self, stream, bar):
        self.stream, self.bar = stream, bar

    def read(self, n=-1):
        data = self.stream.read(n)
        self.bar.update(len(data))
        return data
