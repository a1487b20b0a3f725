"""Helpers every test folder shares: running a course script, and a tiny model config.

- `run_script(path, *args)` starts a script in a fresh Python process, in its
  own folder unless `cwd` says otherwise (what a reader does).
- `run_script_in_process(path, args, cwd)` runs the same `__main__` code in this
  process: much faster when only argument handling is under test (torch is
  imported once). Exits and uncaught exceptions become a return code, and the
  traceback text lands in `stderr`, as in a real process.
- `run_notebook_code(path, names=None)`: a notebook's code cells executed in
  one namespace, as Jupyter would, so tests check the code a reader sees.
- `tiny_gpt_config(**changes)`: GPT-2's configuration shrunk so that a model
  builds and runs in milliseconds.
(The one offline fixture, `course_mirror`, is in conftest.py.)
"""

import ast
import contextlib
import io
import os
import runpy
import subprocess
import sys
import traceback
from pathlib import Path

import nbformat

from support.course_imports import REPO_ROOT

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
    """sys.argv, sys.path, working folder and sibling modules as in `folder`.

    Every chapter folder has its own `previous_chapters.py`, `downloads.py`,
    ...: those module names are forgotten again afterwards, so the next
    folder gets its own.
    """
    siblings = {path.stem for path in folder.glob("*.py")}
    saved_modules = {name: sys.modules.pop(name) for name in siblings if name in sys.modules}
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = argv
    sys.path.insert(0, str(folder))
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path.remove(str(folder))
        sys.argv = saved_argv
        for name in siblings:
            sys.modules.pop(name, None)
        sys.modules.update(saved_modules)


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


def _defined_names(tree):
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def run_notebook_code(path, names=None):
    """Execute a notebook's code cells in one namespace (dict), as Jupyter would.

    `path` is absolute or relative to the repository. The cells run in the
    notebook's folder, with its sibling .py files importable, printing into
    the void. With `names`, only the cells that define one of those functions
    or classes run (cells holding imports and definitions), in notebook
    order, so one class may use a function of an earlier cell.
    """
    path = Path(REPO_ROOT, path)
    nb = nbformat.read(path, as_version=4)
    namespace = {"__name__": "__notebook__"}
    missing = set(names or ())
    with _course_folder(path.parent, path.parent, sys.argv), \
            contextlib.redirect_stdout(io.StringIO()):
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            tree = ast.parse(cell.source)
            if names is not None:
                if not _defined_names(tree) & missing:
                    continue
                missing -= _defined_names(tree)
            exec(compile(tree, str(path), "exec"), namespace)
    if missing:
        raise LookupError(f"{path.name} defines no {sorted(missing)}")
    return namespace


def tiny_gpt_config(**changes):
    """GPT_CONFIG_124M's keys with tiny sizes (plus `changes`)."""
    config = {"vocab_size": 50257, "context_length": 16, "emb_dim": 32, "n_heads": 4,
              "n_layers": 2, "drop_rate": 0.0, "qkv_bias": False}
    unknown = set(changes) - set(config)
    if unknown:
        raise KeyError(f"not GPT config keys: {sorted(unknown)}")
    return {**config, **changes}
