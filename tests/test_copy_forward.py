"""The copy-forward checker: the real tree passes, a divergent copy fails."""

import nbformat
from copy_forward import (
    REPO_ROOT,
    VARIANTS,
    find_definitions,
    find_divergent_copies,
    fix_copies,
    group_copies,
)

HOME_SOURCE = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'


def write_notebook(path, *cell_sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cell_sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def make_tree(root, copy_source):
    """ch02's notebook is the home of `add`; ch03 and ch04 carry copies."""
    write_notebook(root / "ch02/01_main-chapter-code/ch02.ipynb", "import torch",
                   "x = 1\n" + HOME_SOURCE + "print(add(1, 2))")
    copy_file = root / "ch03/01_main-chapter-code/previous_chapters.py"
    copy_file.parent.mkdir(parents=True)
    copy_file.write_text("import math\n\n\n" + copy_source + "\n\ndef other():\n    pass\n")
    write_notebook(root / "ch04/01_main-chapter-code/ch04.ipynb", copy_source)
    return copy_file


def test_real_tree_has_no_divergent_copies():
    problems = find_divergent_copies(REPO_ROOT)
    report = "\n".join(f"{c.name}: {c.location()} != home {h.location()}" for h, c in problems)
    assert not problems, report


def test_registered_variants_exist():
    """A stale registry entry would hide nothing but mislead the reader."""
    defined = {(d.name, d.path) for d in find_definitions(REPO_ROOT)}
    assert set(VARIANTS) <= defined, sorted(set(VARIANTS) - defined)


def test_identical_copies_pass(tmp_path):
    make_tree(tmp_path, HOME_SOURCE.rstrip("\n"))
    assert find_divergent_copies(tmp_path, variants={}) == []


def test_divergent_copy_fails_and_fix_repairs_it(tmp_path):
    drifted = HOME_SOURCE.replace("a + b", "b + a").rstrip("\n")
    copy_file = make_tree(tmp_path, drifted)

    problems = find_divergent_copies(tmp_path, variants={})
    assert sorted(copy.path for _, copy in problems) == [
        "ch03/01_main-chapter-code/previous_chapters.py",
        "ch04/01_main-chapter-code/ch04.ipynb",
    ]
    assert {home.path for home, _ in problems} == {"ch02/01_main-chapter-code/ch02.ipynb"}

    assert fix_copies(tmp_path, variants={}) == 2
    assert find_divergent_copies(tmp_path, variants={}) == []
    fixed = copy_file.read_text()
    assert "return a + b" in fixed and "def other()" in fixed and fixed.startswith("import math")


def test_registered_variant_is_allowed(tmp_path):
    make_tree(tmp_path, HOME_SOURCE.replace("a + b", "a + b + 0").rstrip("\n"))
    variants = {
        ("add", "ch03/01_main-chapter-code/previous_chapters.py"): "test variant",
        ("add", "ch04/01_main-chapter-code/ch04.ipynb"): "test variant",
    }
    assert find_divergent_copies(tmp_path, variants=variants) == []


def test_home_prefers_earliest_chapter_and_main_notebook(tmp_path):
    make_tree(tmp_path, HOME_SOURCE.rstrip("\n"))
    write_notebook(tmp_path / "ch02/02_bonus/extra.ipynb", HOME_SOURCE)
    group = group_copies(find_definitions(tmp_path), variants={})["add"]
    assert group[0].path == "ch02/01_main-chapter-code/ch02.ipynb"


def test_variants_with_one_reason_must_agree(tmp_path):
    """Variants registered for the same reason form a family checked among itself."""
    variant = HOME_SOURCE.replace("a + b", "a + b + 0").rstrip("\n")
    make_tree(tmp_path, variant)
    write_notebook(tmp_path / "ch05/01_main-chapter-code/ch05.ipynb",
                   variant.replace("+ 0", "+ 1"))
    reason = "test family"
    variants = {
        ("add", "ch03/01_main-chapter-code/previous_chapters.py"): reason,
        ("add", "ch04/01_main-chapter-code/ch04.ipynb"): reason,
        ("add", "ch05/01_main-chapter-code/ch05.ipynb"): reason,
    }
    problems = find_divergent_copies(tmp_path, variants=variants)
    assert [(home.path, copy.path) for home, copy in problems] == [
        ("ch03/01_main-chapter-code/previous_chapters.py", "ch05/01_main-chapter-code/ch05.ipynb")
    ]
