"""Check (and repair) the copy-forward convention.

Each chapter copies the earlier code it needs, so every folder runs on its
own. Copies drift when someone edits one of them; this module finds every
top-level function or class name that is defined in more than one place
(`.py` files and notebook code cells) and reports the copies whose source
differs from the definition's home.

    python tests/copy_forward.py          # report divergent copies, exit 1 if any
    python tests/copy_forward.py --fix    # rewrite every copy from its home

The home of a name is the chapter that introduces it: the earliest chapter
that defines it, and within that chapter the main notebook `chNN.ipynb`,
then the main code folder, then bonus folders. `previous_chapters.py` is a
home only when nothing else defines the name.
"""

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent

# Folders that are not course code (the tests have their own helpers).
EXCLUDED_TOP_LEVEL = {"tests"}

# Names every script may define in its own way.
SCRIPT_ENTRY_POINTS = {"main", "parse_args"}

# Deliberate variants: (name, repository-relative path) -> why it differs.
VARIANTS = {
    ("GPTModel", "ch04/03_kv-cache/gpt_with_kv_cache.py"):
        "the book's KV-cache GPTModel: forward(in_idx, use_cache=False) and reset_kv_cache()",
    ("GPTModel", "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py"):
        "the book's optimized KV-cache GPTModel: a sliding window over a preallocated cache",
    ("generate_text_simple_cached", "ch04/03_kv-cache/gpt_with_kv_cache_optimized.py"):
        "the book's optimized version: chunked prefill for the windowed cache",
}


@dataclass
class Definition:
    name: str
    path: str             # repository-relative, with forward slashes
    cell: int | None      # notebook cell index, None for .py files
    start: int            # first line (0-based) within the file or cell
    end: int              # one past the last line
    source: str

    def location(self):
        return self.path if self.cell is None else f"{self.path} (cell {self.cell})"


def _without_magics(source):
    """Blank out IPython magics and shell escapes so the cell parses as Python."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")
    )


def _top_level_definitions(source):
    """(name, start, end) of each top-level def/class, decorators included."""
    tree = ast.parse(_without_magics(source))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            yield node.name, first - 1, node.end_lineno


def _course_files(root):
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if relative.parts[0] in EXCLUDED_TOP_LEVEL or "__pycache__" in relative.parts:
            continue
        if path.suffix in {".py", ".ipynb"} and path.is_file():
            yield path, relative.as_posix()


def _sources_of(path):
    """(cell index or None, source text) for each code unit in the file."""
    if path.suffix == ".py":
        yield None, path.read_text()
        return
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            yield index, cell.source


def find_definitions(root=REPO_ROOT):
    root = Path(root)
    definitions = []
    for path, relative in _course_files(root):
        for cell, source in _sources_of(path):
            lines = source.split("\n")
            try:
                found = list(_top_level_definitions(source))
            except SyntaxError as err:
                raise SyntaxError(f"{relative} (cell {cell}): {err}") from None
            for name, start, end in found:
                body = "\n".join(lines[start:end])
                definitions.append(Definition(name, relative, cell, start, end, body))
    return definitions


def _home_rank(definition):
    """Sort key: the smallest key is the home of a name."""
    parts = definition.path.split("/")
    match = re.fullmatch(r"(ch|appendix-)(\w+)", parts[0])
    if match and match.group(1) == "ch":
        chapter = (0, int(match.group(2)), "")
    elif match:
        chapter = (1, 0, match.group(2))
    else:
        chapter = (2, 0, parts[0])
    filename = parts[-1]
    is_main_notebook = re.fullmatch(rf"{parts[0]}\.ipynb", filename) is not None
    in_main_folder = len(parts) > 1 and parts[1] == "01_main-chapter-code"
    is_copy_file = filename == "previous_chapters.py"
    return (chapter, is_copy_file, not is_main_notebook, not in_main_folder,
            definition.path, definition.cell or 0, definition.start)


def group_copies(definitions, variants=None):
    """{name: [home, copy, copy, ...]} for names defined more than once."""
    variants = VARIANTS if variants is None else variants
    groups = {}
    for definition in definitions:
        if definition.name in SCRIPT_ENTRY_POINTS:
            continue
        if (definition.name, definition.path) in variants:
            continue
        groups.setdefault(definition.name, []).append(definition)
    return {name: sorted(group, key=_home_rank)
            for name, group in groups.items() if len(group) > 1}


def find_divergent_copies(root=REPO_ROOT, variants=None):
    """[(home, copy)] for every copy whose source differs from its home."""
    problems = []
    for group in group_copies(find_definitions(root), variants).values():
        home = group[0]
        problems.extend((home, copy) for copy in group[1:] if copy.source != home.source)
    return problems


def fix_copies(root=REPO_ROOT, variants=None):
    """Rewrite every divergent copy with its home's source; return how many."""
    root = Path(root)
    problems = find_divergent_copies(root, variants)
    by_file = {}
    for home, copy in problems:
        by_file.setdefault(copy.path, []).append((home, copy))
    for relative, pairs in by_file.items():
        _rewrite_file(root / relative, pairs)
    return len(problems)


def _replace_lines(text, start, end, replacement):
    lines = text.split("\n")
    lines[start:end] = replacement.split("\n")
    return "\n".join(lines)


def _rewrite_file(path, pairs):
    # Bottom-up, so earlier line numbers stay valid after each replacement.
    pairs = sorted(pairs, key=lambda pair: (pair[1].cell or 0, pair[1].start), reverse=True)
    if path.suffix == ".py":
        text = path.read_text()
        for home, copy in pairs:
            text = _replace_lines(text, copy.start, copy.end, home.source)
        path.write_text(text)
        return
    nb = nbformat.read(path, as_version=4)
    for home, copy in pairs:
        cell = nb.cells[copy.cell]
        cell.source = _replace_lines(cell.source, copy.start, copy.end, home.source)
    nbformat.write(nb, path)


def main():
    parser = argparse.ArgumentParser(description="Check copy-forward definitions.")
    parser.add_argument("--fix", action="store_true", help="rewrite copies from their homes")
    parser.add_argument("--root", type=Path, default=REPO_ROOT)
    args = parser.parse_args()
    if args.fix:
        print(f"rewrote {fix_copies(args.root)} copies from their homes")
    problems = find_divergent_copies(args.root)
    for home, copy in problems:
        print(f"{copy.name}: {copy.location()} differs from its home {home.location()}")
    if not problems:
        print("all copies equal their homes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
