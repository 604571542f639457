"""Getting Tiny Shakespeare: download once into a cache, verify, or use a local copy.

The text (Karpathy's char-rnn data set, 1,115,394 bytes) is fetched from the char-rnn
repository the first time and checked against its sha256, so a truncated or altered download
is never trained on. Offline machines point at a local copy with `--data PATH` or the
TINYLLM_DATA environment variable. The cache is $TINYLLM_CACHE, else $XDG_CACHE_HOME/tinyllm,
else ~/.cache/tinyllm.
"""
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def cache_dir():
    if os.environ.get("TINYLLM_CACHE"):
        return Path(os.environ["TINYLLM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinyllm"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shakespeare_path(data=None):
    """The path of the training text: `data` if given, else $TINYLLM_DATA, else the verified
    cached download (downloading it first if needed)."""
    local = data or os.environ.get("TINYLLM_DATA")
    if local and Path(local).is_dir():
        raise ValueError(f"data file {local} is a directory (for a folder written by "
                         "`tinyllm prepare`, pass --dataset)")
    return verified_file(local, "tinyshakespeare.txt", SHAKESPEARE_URL, SHAKESPEARE_SHA256,
                         "TINYLLM_DATA")


def verified_file(local, filename, url, sha256, env):
    """`local` if given (it must be a file), else the cached download of `url` named `filename`,
    verified against `sha256` (fetched first if absent or altered). `env` is the variable that
    points at a local copy, which the offline error message suggests."""
    if local:
        if not Path(local).is_file():
            raise FileNotFoundError(f"data file {local} does not exist")
        return Path(local)
    cached = cache_dir() / filename
    if not (cached.is_file() and sha256_of(cached) == sha256):
        download(url, cached, sha256, env)
    return cached


def download(url, dest, sha256, env="TINYLLM_DATA"):
    """Fetch `url` into `dest` atomically (temp file, verify, rename), or explain how not to."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=30) as response:
            f.write(response.read())
        if sha256_of(tmp) != sha256:
            raise ValueError(f"checksum mismatch for {url}: the download is corrupt or altered")
        os.replace(tmp, dest)
    except OSError as e:
        raise RuntimeError(
            f"could not download {url} ({e}).\nOn an offline machine, copy the file there and "
            f"pass --data PATH or set {env}=PATH (expected sha256 {sha256})."
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
