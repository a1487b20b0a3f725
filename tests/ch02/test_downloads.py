"""The download helper against a real HTTP server on 127.0.0.1.

Each test serves files (or misbehaves on purpose) from a small threaded server
started by the test, downloads into a folder of its own, and checks both the
outcome and that no partial or temporary file is left behind.
"""

import hashlib
import http.server
import os
import errno
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter

import pytest
from support.course_imports import import_course_module
from support.helpers import sigterm_once_a_part_file_appears

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


def test_download_error_is_a_runtime_error():
    # Readers' `except RuntimeError` (and the training script's fallback) catch it.
    assert issubclass(downloads.DownloadError, RuntimeError)



# --- Nothing lost: permissions, failures on the destination side, SIGTERM ---------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_finished_file_has_the_mode_a_plain_open_gives(server, folder, umask):
    """A shared cache (tiktoken's) must stay readable for other users."""
    server.routes["/file.txt"] = ("ok", CONTENT)
    old_umask = os.umask(umask)
    try:
        downloads.download_file(server.url("/file.txt"), folder / "file.txt", CONTENT_SHA256)
        with open(folder / "plain.txt", "w"):
            pass
    finally:
        os.umask(old_umask)
    mode = os.stat(folder / "file.txt").st_mode & 0o777
    assert mode == os.stat(folder / "plain.txt").st_mode & 0o777 == 0o666 & ~umask


def test_failed_rename_names_the_destination_and_leaves_no_part_file(
    server, folder, monkeypatch
):
    server.routes["/file.txt"] = ("ok", CONTENT)

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(downloads.os, "replace", full_disk)
    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(server.url("/file.txt"), folder / "file.txt", CONTENT_SHA256)
    message = str(err.value)
    assert "No space left on device" in message and str(folder) in message
    assert "network" not in message
    assert files_in(folder) == []


def test_destination_that_cannot_be_a_folder_is_named(server, tmp_path):
    server.routes["/file.txt"] = ("ok", CONTENT)
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file(server.url("/file.txt"), not_a_folder / "file.txt")
    assert f"cannot create the folder {not_a_folder}" in str(err.value)
    assert server.hits["/file.txt"] == 0 and not_a_folder.read_text() == "mine"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="needs a user whom file permissions restrict (not root)")
def test_read_only_folder_is_named(server, folder):
    server.routes["/file.txt"] = ("ok", CONTENT)
    folder.chmod(0o555)
    try:
        with pytest.raises(downloads.DownloadError) as err:
            downloads.download_file(server.url("/file.txt"), folder / "file.txt")
    finally:
        folder.chmod(0o755)
    assert f"cannot write in {folder} (Permission denied)" in str(err.value)
    assert files_in(folder) == []


def test_write_error_mid_download_says_so_and_leaves_no_part_file(server, folder):
    """A file-size limit (like a full disk) hits while the body is being written."""
    server.routes["/big.bin"] = ("ok", CONTENT * 20)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {os.path.dirname(downloads.__file__)!r})
        import downloads
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get an OSError, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            downloads.download_file({server.url("/big.bin")!r}, {str(folder / "big.bin")!r})
        except downloads.DownloadError as err:
            print(err)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert f"cannot write in {folder} (File too large)" in result.stdout, result.stderr
    assert files_in(folder) == []


def test_sigterm_during_download_leaves_no_part_file(server, folder):
    server.routes["/slow.bin"] = ("stall-in-body", CONTENT)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(downloads.__file__)!r})
        import downloads
        downloads.download_file({server.url("/slow.bin")!r}, {str(folder / "slow.bin")!r})
    """)
    returncode = sigterm_once_a_part_file_appears(script, folder)
    assert returncode != 0
    assert files_in(folder) == []


def test_corrupt_mirror_file_is_called_corrupt(tmp_path, folder, monkeypatch, network_blocked):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "file.txt").write_bytes(CONTENT[:-1])
    monkeypatch.setenv(downloads.MIRROR_ENV_VAR, str(mirror))
    with pytest.raises(downloads.DownloadError) as err:
        downloads.download_file("https://example.com/file.txt", folder / "file.txt",
                                CONTENT_SHA256)
    message = str(err.value)
    assert f"mirror file {mirror / 'file.txt'}: corrupt (sha256 mismatch)" in message
    assert "https://example.com/file.txt: network error" in message
