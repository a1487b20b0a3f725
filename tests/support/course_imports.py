"""Import a chapter's module in a test, the way the chapter itself imports it.

Every chapter folder has its own `previous_chapters.py`, `downloads.py`, ...
with the same module names. Importing them through `sys.path` in one pytest
process would hand chapter 5 the chapter 4 copy. `import_course_module`
imports a file with its own folder first on the path and then forgets the
sibling module names again, so each folder always gets its own siblings.
"""

import ast
import importlib
import sys
import types
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[2]

_loaded = {}


def import_course_module(relative_path):
    """Import e.g. "ch04/01_main-chapter-code/gpt.py" and return the module."""
    path = (REPO_ROOT / relative_path).resolve()
    if path in _loaded:
        return _loaded[path]
    folder = path.parent
    sibling_names = {p.stem for p in folder.glob("*.py")}
    shadowed = {name: sys.modules.pop(name) for name in sibling_names if name in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(path.stem)
    finally:
        sys.path.remove(str(folder))
        for name in sibling_names:
            sys.modules.pop(name, None)
        sys.modules.update(shadowed)
    _loaded[path] = module
    return module


def definitions_from_notebook(notebook, names, namespace=None):
    """Run the notebook code cells that define `names`; return them as a namespace.

    Notebooks cannot be imported, so we execute only the cells whose top level
    defines one of the requested functions or classes (those cells hold just
    imports, constants and definitions). Cells run in notebook order, sharing
    one namespace, so a class can use a function from an earlier cell.
    `namespace` (copied) supplies what the notebook imported in other cells.
    """
    namespace = dict(namespace or {})
    missing = set(names)
    for cell in nbformat.read(REPO_ROOT / notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        defined = {
            node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
        }
        if defined & missing:
            exec(compile(tree, f"{notebook} (cell)", "exec"), namespace)
            missing -= defined
    if missing:
        raise LookupError(f"{notebook} defines no {sorted(missing)}")
    return types.SimpleNamespace(**{name: namespace[name] for name in names})
