"""The download helper against a real HTTP server on 127.0.0.1.

Each test serves files (or misbehaves on purpose) from a small threaded server
started by the test, downloads into a folder of its own, and checks both the
outcome and that no partial or temporary file is left behind.
"""

import hashlib
import http.server
import os
import socket
import threading
import time
from collections import Counter

import pytest
from course_imports import REPO_ROOT, import_course_module

downloads = import_course_module("ch02/01_main-chapter-code/downloads.py")

CONTENT = b"It had always been a quiet house, and the clocks kept it so.\n" * 200
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()
VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
VERDICT_URL_PATH = "rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers GET according to `server.routes`: path -> (behaviour, body)."""

    def do_GET(self):  # noqa: N802 (name fixed by http.server)
        self.server.hits[self.path] += 1
        behaviour, body = self.server.routes.get(self.path, ("missing", b""))
        if behaviour == "missing":
            self.send_error(404)
            return
        if behaviour == "stall-before-headers":
            self.server.release.wait(10)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "ok":
            self.wfile.write(body)
        elif behaviour == "stall-in-body":
            self.wfile.write(body[:100])
            self.wfile.flush()
            self.server.release.wait(10)
        elif behaviour == "cut-short":
            # Promise len(body) bytes, send 40% of them, then hang up.
            self.wfile.write(body[: len(body) * 2 // 5])
            self.close_connection = True

    def log_message(self, *args):  # keep pytest's output clean
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client hanging up on a stalled handler is expected here


@pytest.fixture
def server():
    """A live server; `server.url(path)` builds URLs, `server.hits` counts requests."""
    srv = _QuietServer(("127.0.0.1", 0), _Handler)
    srv.routes, srv.hits, srv.release = {}, Counter(), threading.Event()
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def no_mirror_no_proxy(monkeypatch):
    """Start every test without a mirror, and never route 127.0.0.1 via a proxy."""
    monkeypatch.delenv(downloads.MIRROR_ENV_VAR, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def network_blocked(monkeypatch):
    """Make every outgoing connection fail; returns the list of attempted addresses."""
    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise OSError(f"network blocked by the test (tried {address})")

    def refuse_lookup(host, port, *args, **kwargs):
        return refuse(None, (host, port))

    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def files_in(folder):
    """Every name in `folder`, hidden temp files included."""
    return sorted(os.listdir(folder))


def unused_port():
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_downloads_file_with_matching_checksum(server, folder, capsys):
    server.routes["/data/file.txt"] = ("ok", CONTENT)
    destination = folder / "file.txt"

    result = downloads.download_file(server.url("/data/file.txt"), destination, CONTENT_SHA256)

    assert result == destination
    assert destination.read_bytes() == CONTENT
    assert files_in(folder) == ["file.txt"]
    assert "file.txt" in capsys.readouterr().err  # the progress bar, labelled with the file


def test_downloads_without_checksum_and_creates_missing_folders(server, folder):
    server.routes["/file.txt"] = ("ok", CONTENT)
    destination = folder / "a" / "b" / "file.txt"

    downloads.download_file(server.url("/file.txt"), destination)

    assert destination.read_bytes() == CONTENT


def test_404_raises_and_leaves_nothing(server, folder):
    url = server.url("/no-such-file.txt")
    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(url, folder / "file.txt", CONTENT_SHA256)

    assert "404" in str(err.value)
    assert url in str(err.value)
    assert files_in(folder) == []


@pytest.mark.parametrize("behaviour", ["stall-before-headers", "stall-in-body"])
def test_stalled_server_times_out(server, folder, behaviour):
    server.routes["/slow.txt"] = (behaviour, CONTENT)

    started = time.monotonic()
    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(server.url("/slow.txt"), folder / "slow.txt", timeout=0.3)
    elapsed = time.monotonic() - started

    assert elapsed < 5, f"a 0.3 s timeout took {elapsed:.1f} s to fire"
    assert "timed out" in str(err.value)
    assert files_in(folder) == []


def test_body_cut_short_is_not_kept(server, folder):
    server.routes["/cut.txt"] = ("cut-short", CONTENT)

    # No checksum: only the Content-Length check can notice the missing bytes.
    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(server.url("/cut.txt"), folder / "cut.txt")

    assert "bytes" in str(err.value)
    assert files_in(folder) == []


def test_wrong_checksum_is_rejected_and_file_removed(server, folder):
    server.routes["/file.txt"] = ("ok", CONTENT)
    wrong_sha256 = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(server.url("/file.txt"), folder / "file.txt", wrong_sha256)

    assert "sha256 mismatch" in str(err.value)
    assert CONTENT_SHA256 in str(err.value)  # says what it actually got
    assert files_in(folder) == []


@pytest.mark.parametrize("primary_failure", ["refused", "404", "corrupt"])
def test_backup_url_used_when_primary_fails(server, folder, primary_failure):
    server.routes["/backup/file.txt"] = ("ok", CONTENT)
    server.routes["/corrupt/file.txt"] = ("ok", CONTENT[::-1])
    primary = {
        "refused": f"http://127.0.0.1:{unused_port()}/file.txt",
        "404": server.url("/gone/file.txt"),
        "corrupt": server.url("/corrupt/file.txt"),
    }[primary_failure]

    downloads.download_file(
        primary, folder / "file.txt", CONTENT_SHA256, backup_urls=[server.url("/backup/file.txt")]
    )

    assert (folder / "file.txt").read_bytes() == CONTENT
    assert server.hits["/backup/file.txt"] == 1
    assert files_in(folder) == ["file.txt"]


@pytest.mark.parametrize("mirror_name", [VERDICT_URL_PATH, "the-verdict.txt"])
def test_mirror_used_with_network_unreachable(
    tmp_path, folder, monkeypatch, network_blocked, mirror_name
):
    mirror = tmp_path / "mirror"
    (mirror / mirror_name).parent.mkdir(parents=True, exist_ok=True)
    (mirror / mirror_name).write_bytes(CONTENT)
    monkeypatch.setenv(downloads.MIRROR_ENV_VAR, str(mirror))

    downloads.download_file(VERDICT_URL, folder / "the-verdict.txt", CONTENT_SHA256)

    assert (folder / "the-verdict.txt").read_bytes() == CONTENT
    assert network_blocked == []
    assert files_in(folder) == ["the-verdict.txt"]


def test_mirror_prefers_url_path_over_base_name(tmp_path, folder, monkeypatch, network_blocked):
    # Several GPT-2 sizes ship a file called hparams.json; the URL path tells them apart.
    url = "https://openaipublic.blob.core.windows.net/gpt-2/models/124M/hparams.json"
    mirror = tmp_path / "mirror"
    (mirror / "gpt-2/models/124M").mkdir(parents=True)
    (mirror / "gpt-2/models/124M/hparams.json").write_text('{"n_layer": 12}')
    (mirror / "hparams.json").write_text('{"n_layer": 24}')
    monkeypatch.setenv(downloads.MIRROR_ENV_VAR, str(mirror))

    downloads.download_file(url, folder / "hparams.json")

    assert (folder / "hparams.json").read_text() == '{"n_layer": 12}'
    assert network_blocked == []


def test_corrupt_mirror_file_and_no_network_fails_cleanly(
    tmp_path, folder, monkeypatch, network_blocked
):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "the-verdict.txt").write_bytes(CONTENT[:-1])
    monkeypatch.setenv(downloads.MIRROR_ENV_VAR, str(mirror))

    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(VERDICT_URL, folder / "the-verdict.txt", CONTENT_SHA256)

    message = str(err.value)
    assert "sha256 mismatch" in message
    assert str(mirror / "the-verdict.txt") in message
    assert "network blocked by the test" in message
    assert len(network_blocked) >= 1  # it did go on to try the URL
    assert files_in(folder) == []


def test_existing_file_with_right_checksum_is_not_fetched_again(server, folder):
    server.routes["/file.txt"] = ("ok", CONTENT)
    (folder / "file.txt").write_bytes(CONTENT)

    downloads.download_file(server.url("/file.txt"), folder / "file.txt", CONTENT_SHA256)

    assert server.hits["/file.txt"] == 0
    assert files_in(folder) == ["file.txt"]


def test_existing_file_with_wrong_checksum_is_replaced(server, folder):
    server.routes["/file.txt"] = ("ok", CONTENT)
    (folder / "file.txt").write_bytes(b"an older, damaged copy")

    downloads.download_file(server.url("/file.txt"), folder / "file.txt", CONTENT_SHA256)

    assert server.hits["/file.txt"] == 1
    assert (folder / "file.txt").read_bytes() == CONTENT
    assert files_in(folder) == ["file.txt"]


def test_error_message_tells_reader_how_to_fix_it(server, folder, tmp_path, monkeypatch):
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    monkeypatch.setenv(downloads.MIRROR_ENV_VAR, str(empty_mirror))
    primary = server.url("/main/data/file.txt")
    backup = f"http://127.0.0.1:{unused_port()}/file.txt"
    destination = folder / "file.txt"

    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(primary, destination, CONTENT_SHA256, backup_urls=[backup])

    message = str(err.value)
    assert "file.txt" in message
    assert primary in message and backup in message
    assert str(destination.resolve()) in message
    assert downloads.MIRROR_ENV_VAR in message
    assert str(empty_mirror) in message
    assert "main/data/file.txt" in message  # where in the mirror it would be found
    assert files_in(folder) == []


def test_every_copy_of_the_helper_is_identical_to_its_home():
    home = REPO_ROOT / "ch02/01_main-chapter-code/downloads.py"
    copies = [p for p in REPO_ROOT.rglob("downloads.py") if ".git" not in p.parts]
    assert home in copies
    different = [
        str(p.relative_to(REPO_ROOT)) for p in copies if p.read_bytes() != home.read_bytes()
    ]
    assert different == [], f"re-copy {home.relative_to(REPO_ROOT)} over: {different}"


def test_download_error_is_a_runtime_error():
    # Readers' `except RuntimeError` (and the training script's fallback) catch it.
    assert issubclass(downloads.DownloadError, RuntimeError)

