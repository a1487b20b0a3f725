"""Use the course's notebooks as modules, and fetch files the course's way.

`import_definitions_from_notebook` runs the imports, functions, classes and
ALL_CAPS constants of a notebook's code cells, skipping everything else (the
demonstrations, training runs and prints), and returns them as a module: a
notebook's model can be imported without running the notebook.
"""

import ast
import sys
import types
from pathlib import Path

import nbformat

from .downloads import download_file  # noqa: F401  (the course's one download helper)

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _extract_imports(src):
    """The source of each top-level import statement in `src`."""
    return [ast.get_source_segment(src, node) for node in ast.parse(src).body
            if isinstance(node, (ast.Import, ast.ImportFrom))]


def _extract_defs_and_classes_from_code(src):
    """The source (decorators included) of each top-level def, class and ALL_CAPS constant."""
    lines = src.split("\n")
    blocks = []
    for node in ast.parse(src).body:
        if isinstance(node, _KEPT[2:]) or _is_constant(node):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            blocks.append("\n".join(lines[first - 1:node.end_lineno]))
    return blocks


def _is_constant(node):
    return (isinstance(node, ast.Assign) and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper())


def _code_cells(path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            # IPython magics and shell escapes (%time, !pip) are not Python.
            yield "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                            for line in cell.source.split("\n"))


def import_definitions_from_notebook(nb_dir_or_path, notebook_name=None, *, extra_globals=None):
    """The notebook's imports and definitions, executed as a new module.

    `nb_dir_or_path` is the notebook itself, or its folder with `notebook_name`.
    The notebook's folder is on `sys.path` while the code runs, so its own
    imports of sibling files (`from previous_chapters import GPTModel`) work.
    `extra_globals` are placed in the module first (names the notebook uses but
    defines in a skipped cell).
    """
    path = Path(nb_dir_or_path)
    if notebook_name is not None:
        path = path / notebook_name
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    imports, definitions = [], []
    for source in _code_cells(path):
        try:
            imports += [line for line in _extract_imports(source) if line not in imports]
            definitions += _extract_defs_and_classes_from_code(source)
        except SyntaxError as err:
            raise SyntaxError(f"{path}: {err}") from None
    module = types.ModuleType(path.stem.replace("-", "_").replace(" ", "_"))
    module.__file__ = str(path)
    module.__dict__.update(extra_globals or {})
    folder = path.resolve().parent
    # Every chapter folder has its own previous_chapters.py: forget any other
    # folder's sibling modules before, and this folder's after.
    siblings = {p.stem for p in folder.glob("*.py")}
    shadowed = {name: sys.modules.pop(name) for name in siblings if name in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        exec(compile("\n".join(imports), str(path), "exec"), module.__dict__)
        for block in definitions:
            exec(compile(block, str(path), "exec"), module.__dict__)
    finally:
        sys.path.remove(str(folder))
        for name in siblings:
            sys.modules.pop(name, None)
        sys.modules.update(shadowed)
    return module
