"""tinyllm/data/download.py: local paths win, downloads are verified, offline errors explain."""
import hashlib
import io
import urllib.error

import pytest

from tinyllm.data import download


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYLLM_DATA", raising=False)
    return tmp_path / "cache"


def fake_server(monkeypatch, body):
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(body))


def test_local_paths_come_first(tmp_path, cache, monkeypatch):
    local = tmp_path / "mine.txt"
    local.write_text("hi")
    assert download.shakespeare_path(str(local)) == local
    monkeypatch.setenv("TINYLLM_DATA", str(local))
    assert download.shakespeare_path() == local
    with pytest.raises(FileNotFoundError, match="does not exist"):
        download.shakespeare_path(str(tmp_path / "absent.txt"))


def test_download_is_verified_and_cached(cache, monkeypatch):
    body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    monkeypatch.setattr(download, "SHAKESPEARE_SHA256", hashlib.sha256(body).hexdigest())
    fake_server(monkeypatch, body)
    path = download.shakespeare_path()
    assert path == cache / "tinyshakespeare.txt" and path.read_bytes() == body
    fake_server(monkeypatch, b"")  # a second call must use the cache, not the network
    assert download.shakespeare_path().read_bytes() == body


def test_corrupt_download_is_rejected_and_not_kept(cache, monkeypatch):
    fake_server(monkeypatch, b"not shakespeare")
    with pytest.raises(ValueError, match="checksum mismatch"):
        download.shakespeare_path()
    assert not any(cache.iterdir())


def test_offline_error_says_what_to_do(cache, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match="--data PATH or set TINYLLM_DATA"):
        download.shakespeare_path()
