"""Load the course's code in a test, the way the course itself runs it.

One loader for each kind of file a reader has:

- A course file: `import_course_module("ch04/01_main-chapter-code/gpt.py")`
  is the module, imported once per session with its own folder first on the path.

- A notebook: `notebook_definitions("ch05/07_gpt_to_llama/standalone-llama32.ipynb")`
  is a module holding the notebook's imports, functions, classes, UPPER_CASE
  constants and aliases (`GPTModel = Llama3Model`), taken from every code cell
  in notebook order and run without the demonstrations around them (a constant
  that reads a demonstration's variable is left out too), so the tests run the
  code a reader sees, not a second copy of it. Loaded once per session and
  shared. `notebook_definitions(path, ["GPTModel", ...])` also checks that
  the notebook defines those names (LookupError naming the missing ones).
  `notebook_definitions(path, whole_cells=True)` runs every statement of every
  cell instead, as Jupyter would, so the run's results are there too
  (`vars(run)["context_vecs"]`); such a run is fresh for each call.

Both run in the file's folder (a notebook's cells also with it as the working
folder, printing into the void): every chapter folder has its own
`previous_chapters.py`, `downloads.py`, ... with the same module names, and
importing them through `sys.path` in one pytest process would hand chapter 5
the chapter 4 copy. `course_folder_on_path` puts the folder first on the path
and hides any other folder's modules of the same names while the code runs,
then forgets this folder's again, so each folder gets its own.
(`llms_from_scratch.utils.import_definitions_from_notebook` is the package's
reader-facing cousin, tested in tests/pkg; it keeps no aliases and runs no
whole cells, which the tests need.)
"""

import ast
import builtins
import contextlib
import functools
import importlib
import io
import os
import sys
import types
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def course_folder_on_path(folder):
    """`folder` first on sys.path, its .py files importable as its own siblings."""
    folder = Path(folder)
    siblings = {path.stem for path in folder.glob("*.py")}
    shadowed = {name: sys.modules.pop(name) for name in siblings if name in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in siblings:
            sys.modules.pop(name, None)
        sys.modules.update(shadowed)


def import_course_module(relative_path):
    """Import e.g. "ch04/01_main-chapter-code/gpt.py" and return the module."""
    return _import_course_module((REPO_ROOT / relative_path).resolve())


@functools.cache
def _import_course_module(path):
    with course_folder_on_path(path.parent):
        return importlib.import_module(path.stem)


def notebook_definitions(notebook, names=(), *, whole_cells=False):
    """The notebook's definitions (or, with `whole_cells`, its whole run) as a module.

    `notebook` is relative to the repository (or absolute); the module
    docstring says what is kept. LookupError if one of `names` is not defined.
    """
    path = (REPO_ROOT / notebook).resolve()
    module = _run_notebook(path) if whole_cells else _notebook_definitions(path)
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        raise LookupError(f"{notebook} defines no {missing}")
    return module


@functools.cache
def _notebook_definitions(path):
    return _run_notebook(path, definitions_only=True)


def _run_notebook(path, definitions_only=False):
    """Run each code cell (or its definitions), in the notebook's folder, into a new module."""
    module = types.ModuleType(f"notebook_{path.stem.replace('-', '_')}")
    defined = set()
    cells = [cell for cell in nbformat.read(path, as_version=4).cells
             if cell.cell_type == "code"]
    saved_cwd = os.getcwd()
    with course_folder_on_path(path.parent), contextlib.redirect_stdout(io.StringIO()):
        os.chdir(path.parent)  # cells read their data files relative to the notebook
        try:
            for index, cell in enumerate(cells):
                tree = ast.parse(cell.source)
                if definitions_only:
                    tree = _definitions_only(tree, defined)
                exec(compile(tree, f"{path.name} (code cell {index})", "exec"), module.__dict__)
        finally:
            os.chdir(saved_cwd)
    return module


def _definitions_only(tree, defined):
    """The cell's imports, defs, classes, UPPER_CASE constants and aliases of those.

    `defined` collects the names bound so far: a constant or alias is kept
    only where it reads nothing else (`GPTModel = Llama3Model` is kept,
    `n = max_length` and `CFG = {**model_configs[...]}` are demonstration).
    """
    kept = [node for node in tree.body if _is_definition(node, defined)]
    return ast.Module(body=kept, type_ignores=[])


def _is_definition(node, defined):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        bound = {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bound = {node.name}
    elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        bound = {target.id for target in node.targets}
        constant = all(name.isupper() for name in bound) or isinstance(node.value, ast.Name)
        if not constant or not _reads(node.value) <= defined | set(dir(builtins)):
            return False
    else:
        return False
    defined |= bound
    return True


def _reads(expression):
    """The outside names `expression` reads (not those its comprehensions/lambdas bind)."""
    nodes = list(ast.walk(expression))
    loaded = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    stored = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    arguments = {a.arg for n in nodes if isinstance(n, ast.arguments)
                 for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a}
    return loaded - stored - arguments
