"""Helpers every test folder shares: running a course script, and a tiny model config.

- `run_script(path, *args)` starts a script in a fresh Python process, in its
  own folder unless `cwd` says otherwise (what a reader does).
- `run_script_in_process(path, args, cwd)` runs the same `__main__` code in this
  process: much faster when only argument handling is under test (torch is
  imported once). Exits and uncaught exceptions become a return code, and the
  traceback text lands in `stderr`, as in a real process.
- `sigterm_once_a_part_file_appears(script, folder)`: a write or download in a
  fresh Python process, stopped with SIGTERM the moment its temporary `.part`
  file exists (what `kill`, or a cluster's scheduler, does to a real run).
- `tiny_gpt_config(**changes)`: GPT-2's configuration shrunk so that a model
  builds and runs in milliseconds.
(The one offline fixture, `course_mirror`, is in conftest.py; course files and
notebooks are loaded by `support.course_imports`.)
"""

import contextlib
import io
import os
import runpy
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from support.course_imports import REPO_ROOT, course_folder_on_path

SCRIPT_TIMEOUT = 300


def run_script(relative_path, *args, cwd=None, env=None, timeout=SCRIPT_TIMEOUT):
    """Run `python SCRIPT ARGS...` (path relative to the repository); return the result."""
    script = REPO_ROOT / relative_path
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)], cwd=cwd or script.parent,
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@contextlib.contextmanager
def _course_folder(folder, cwd, argv):
    """sys.argv, sys.path, working folder and sibling modules as in `folder`."""
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = argv
    os.chdir(cwd)
    try:
        with course_folder_on_path(folder):
            yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv


def run_script_in_process(relative_path, args, cwd):
    """Run SCRIPT's `__main__` here; a CompletedProcess with its code and output."""
    script = REPO_ROOT / relative_path
    stdout, stderr = io.StringIO(), io.StringIO()
    returncode = 0
    with _course_folder(script.parent, Path(cwd), [str(script), *map(str, args)]), \
            contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exit_:
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
            returncode = exit_.code if isinstance(exit_.code, int) else int(bool(exit_.code))
        except Exception:  # noqa: BLE001 (reported like Python would, then checked)
            traceback.print_exc()
            returncode = 1
    return subprocess.CompletedProcess(sys.argv, returncode, stdout.getvalue(),
                                       stderr.getvalue())


def sigterm_once_a_part_file_appears(script, folder):
    """Run `python -c script`; SIGTERM it once a `.part` file is in `folder`; its exit status.

    The `.part` file is the temporary file of `downloads.atomic_write` and
    `download_file`: once it exists, the process is in the middle of writing.
    """
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not any(path.name.endswith(".part") for path in Path(folder).iterdir()):
            assert time.monotonic() < deadline, "the write never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()


def tiny_gpt_config(**changes):
    """GPT_CONFIG_124M's keys with tiny sizes (plus `changes`)."""
    config = {"vocab_size": 50257, "context_length": 16, "emb_dim": 32, "n_heads": 4,
              "n_layers": 2, "drop_rate": 0.0, "qkv_bias": False}
    unknown = set(changes) - set(config)
    if unknown:
        raise KeyError(f"not GPT config keys: {sorted(unknown)}")
    return {**config, **changes}
