"""Import a chapter's module in a test, the way the chapter itself imports it.

Every chapter folder has its own `previous_chapters.py`, `downloads.py`, ...
with the same module names. Importing them through `sys.path` in one pytest
process would hand chapter 5 the chapter 4 copy. `import_course_module`
imports a file with its own folder first on the path and then forgets the
sibling module names again, so each folder always gets its own siblings.
"""

import importlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

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
