"""The definitions of the model notebooks (Llama, Gemma, Qwen3.5, ...), importable by the tests.

The notebooks are the reader-facing code, so the tests run *their*
definitions, not a second copy: `notebook_definitions(path)` executes every
import, function, class, UPPER_CASE constant and alias (`a = b`) of the notebook's code cells
(skipping the demonstrations around them) in the notebook's folder, and
returns them as a namespace.
"""

import ast
import sys
import types
from functools import cache

import nbformat
from support.course_imports import REPO_ROOT

LLAMA_FOLDER = "ch05/07_gpt_to_llama"
KEPT_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)


def _is_definition(node):
    if isinstance(node, KEPT_NODES):
        return True
    if not isinstance(node, ast.Assign):
        return False
    names = all(isinstance(target, ast.Name) for target in node.targets)
    alias = isinstance(node.value, ast.Name)  # another name for a definition
    return names and (alias or all(target.id.isupper() for target in node.targets))


@cache
def notebook_definitions(name, folder=LLAMA_FOLDER):
    """Namespace of the definitions in `folder`/`name` (default: ch05/07_gpt_to_llama)."""
    path = REPO_ROOT / folder / name
    nb = nbformat.read(path, as_version=4)
    namespace = {"__name__": f"notebook_{path.stem.replace('-', '_')}"}
    folder = str(path.parent)
    sibling_names = {p.stem for p in path.parent.glob("*.py")}
    shadowed = {n: sys.modules.pop(n) for n in sibling_names if n in sys.modules}
    sys.path.insert(0, folder)
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            tree = ast.parse(cell.source)
            kept = ast.Module(body=[n for n in tree.body if _is_definition(n)], type_ignores=[])
            exec(compile(kept, f"{path.name} (cell {index})", "exec"), namespace)
    finally:
        sys.path.remove(folder)
        for n in sibling_names:
            sys.modules.pop(n, None)
        sys.modules.update(shadowed)
    return types.SimpleNamespace(**namespace)
