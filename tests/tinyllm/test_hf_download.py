"""tinyllm/hf_download.py against a little HTTP server on 127.0.0.1 (no test goes online):
whole files, resumed files, servers that ignore Range, short answers, and being offline."""
import http.server
import threading
import urllib.error
import urllib.request

import pytest

import tinyllm.hf_download as hf_download
from tinyllm.hf_download import FILES, DownloadError, download_gpt2, fetch_resumable

CONTENT = {name: bytes(range(256)) * (k + 3) for k, name in enumerate(FILES)}


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves CONTENT at /{model}/{file}, honouring `Range: bytes=N-` unless told not to;
    `short` sends fewer bytes than it announces, as a dropped connection does."""

    honour_range, short, ranges = True, False, []

    def do_GET(self):
        data = CONTENT.get(self.path.rsplit("/", 1)[-1])
        if data is None:
            return self.send_error(404)
        start = 0
        if self.headers["Range"] and self.honour_range:
            Handler.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:len(data) // 2 if self.short else None])

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server(monkeypatch):
    """A server on a free port of 127.0.0.1, with the Hub's URL pointed at it."""
    Handler.honour_range, Handler.short, Handler.ranges = True, False, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(hf_download, "HUB_URL",
                        f"http://127.0.0.1:{httpd.server_port}/{{name}}/{{file}}")
    yield Handler
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def url_of(name, file="model.safetensors"):
    return hf_download.HUB_URL.format(name=name, file=file)


def test_downloads_the_four_files_into_the_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "cache"))
    folder = download_gpt2("gpt2-medium", progress=False)
    assert folder == tmp_path / "cache" / "huggingface" / "gpt2-medium"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == CONTENT


def test_resumes_a_part_file_with_a_range_request(server, tmp_path):
    data = CONTENT["model.safetensors"]
    (tmp_path / "model.safetensors.part").write_bytes(data[:100])
    fetch_resumable(url_of("gpt2"), tmp_path / "model.safetensors")
    assert server.ranges == ["bytes=100-"]
    assert (tmp_path / "model.safetensors").read_bytes() == data
    assert not (tmp_path / "model.safetensors.part").exists()


def test_a_whole_part_file_is_renamed_and_an_overlong_one_refetched(server, tmp_path):
    data = CONTENT["model.safetensors"]
    (tmp_path / "model.safetensors.part").write_bytes(data)
    fetch_resumable(url_of("gpt2"), tmp_path / "model.safetensors")
    assert (tmp_path / "model.safetensors").read_bytes() == data
    (tmp_path / "vocab.json.part").write_bytes(b"x" * 10_000)
    fetch_resumable(url_of("gpt2", "vocab.json"), tmp_path / "vocab.json")
    assert (tmp_path / "vocab.json").read_bytes() == CONTENT["vocab.json"]


def test_a_server_ignoring_range_restarts_the_file(server, tmp_path):
    server.honour_range = False
    (tmp_path / "model.safetensors.part").write_bytes(b"stale bytes")
    fetch_resumable(url_of("gpt2"), tmp_path / "model.safetensors")
    assert (tmp_path / "model.safetensors").read_bytes() == CONTENT["model.safetensors"]


def test_a_short_answer_keeps_the_part_file_and_then_resumes(server, tmp_path):
    server.short = True
    with pytest.raises(DownloadError, match="received .* of .* bytes; run again to resume"):
        download_gpt2("gpt2", cache_root=tmp_path, progress=False)
    folder = tmp_path / "huggingface" / "gpt2"
    assert not (folder / "config.json").exists() and (folder / "config.json.part").exists()
    server.short = False
    download_gpt2("gpt2", cache_root=tmp_path, progress=False)
    assert (folder / "config.json").read_bytes() == CONTENT["config.json"]


def test_offline_names_the_files_and_the_folder(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError) as error:
        download_gpt2("gpt2-xl", cache_root=tmp_path, progress=False)
    message = str(error.value)
    assert all(name in message for name in FILES)
    assert str(tmp_path / "huggingface" / "gpt2-xl") in message


def test_files_already_there_are_not_fetched_again(tmp_path, monkeypatch):
    folder = tmp_path / "huggingface" / "gpt2"
    folder.mkdir(parents=True)
    for name, data in CONTENT.items():
        (folder / name).write_bytes(data)
    monkeypatch.setattr(urllib.request, "urlopen", None)  # any call would fail
    assert download_gpt2("gpt2", cache_root=tmp_path) == folder


def test_unknown_model_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'gpt3'; choose from gpt2, "):
        download_gpt2("gpt3", cache_root=tmp_path)
