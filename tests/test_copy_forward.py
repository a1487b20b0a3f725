"""The copy-forward checker: the real tree passes, every kind of broken copy fails."""

import nbformat
import pytest
from copy_forward import (
    HOME_RULE,
    REPO_ROOT,
    VARIANTS,
    WHOLE_FILE_HOMES,
    find_definitions,
    find_problems,
    fix_copies,
    group_copies,
)

HOME_SOURCE = 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n'
CONSTANT = 'GPT_CONFIG_TINY = {\n    "vocab_size": 50257,\n    "emb_dim": 8,\n}\n'
DOWNLOADS_HOME = WHOLE_FILE_HOMES["downloads.py"]


def write_notebook(path, *cell_sources, tags=()):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
                for source in cell_sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HOME_MARKER = "# Copied from ch02/01_main-chapter-code/ch02.ipynb::add"


def make_tree(root, copy_source, marker=HOME_MARKER):
    """ch02's notebook is the home of `add`; ch03 and ch04 carry copies."""
    write_notebook(root / "ch02/01_main-chapter-code/ch02.ipynb", "import torch",
                   "x = 1\n" + HOME_SOURCE + "print(add(1, 2))")
    marked = f"{marker}\n{copy_source}" if marker else copy_source
    copy_file = write(root / "ch03/01_main-chapter-code/previous_chapters.py",
                      "import math\n\n\n" + marked + "\n\ndef other():\n    pass\n")
    write_notebook(root / "ch04/01_main-chapter-code/ch04.ipynb", marked)
    return copy_file


def messages(root):
    return [problem.message for problem in find_problems(root, variants={})]


@pytest.fixture(scope="module")
def real_definitions():
    """The repository's definitions, read once (the scan is the slow part)."""
    return find_definitions(REPO_ROOT)


def test_real_tree_has_no_broken_copies(real_definitions):
    problems = find_problems(REPO_ROOT, definitions=real_definitions)
    assert not problems, "\n".join(problem.message for problem in problems)


def test_registered_variants_exist(real_definitions):
    """A stale registry entry would hide nothing but mislead the reader."""
    defined = {(d.name, d.path) for d in real_definitions}
    assert set(VARIANTS) <= defined, sorted(set(VARIANTS) - defined)


def test_contributing_states_the_checkers_home_rule():
    contributing = " ".join((REPO_ROOT / "CONTRIBUTING.md").read_text().split())
    assert HOME_RULE in contributing


def test_identical_copies_pass(tmp_path):
    make_tree(tmp_path, HOME_SOURCE.rstrip("\n"))
    assert messages(tmp_path) == []


def test_divergent_copy_fails_and_fix_repairs_it(tmp_path):
    drifted = HOME_SOURCE.replace("a + b", "b + a").rstrip("\n")
    copy_file = make_tree(tmp_path, drifted)

    problems = find_problems(tmp_path, variants={})
    assert sorted(problem.path for problem in problems) == [
        "ch03/01_main-chapter-code/previous_chapters.py",
        "ch04/01_main-chapter-code/ch04.ipynb",
    ]
    assert all("home ch02/01_main-chapter-code/ch02.ipynb" in p.message for p in problems)

    assert fix_copies(tmp_path, variants={}) == 2
    assert messages(tmp_path) == []
    fixed = copy_file.read_text()
    assert "return a + b" in fixed and "def other()" in fixed and fixed.startswith("import math")


def test_registered_variant_is_allowed(tmp_path):
    make_tree(tmp_path, HOME_SOURCE.replace("a + b", "a + b + 0").rstrip("\n"), marker=None)
    variants = {
        ("add", "ch03/01_main-chapter-code/previous_chapters.py"): "test variant",
        ("add", "ch04/01_main-chapter-code/ch04.ipynb"): "another test variant",
    }
    assert find_problems(tmp_path, variants=variants) == []


def test_home_prefers_earliest_chapter_and_main_notebook(tmp_path):
    make_tree(tmp_path, HOME_SOURCE.rstrip("\n"))
    write_notebook(tmp_path / "ch02/02_bonus/extra.ipynb", HOME_SOURCE)
    group = group_copies(find_definitions(tmp_path), variants={})["add"]
    assert group[0].path == "ch02/01_main-chapter-code/ch02.ipynb"


def test_previous_chapters_is_no_home_when_a_chapter_defines_the_name(tmp_path):
    write(tmp_path / "ch03/01_main-chapter-code/previous_chapters.py", HOME_SOURCE)
    write(tmp_path / "ch04/01_main-chapter-code/gpt.py", HOME_SOURCE)
    group = group_copies(find_definitions(tmp_path), variants={})["add"]
    assert group[0].path == "ch04/01_main-chapter-code/gpt.py"


def test_drifted_constant_fails_and_fix_repairs_it(tmp_path):
    write(tmp_path / "ch04/01_main-chapter-code/gpt.py", CONSTANT)
    marker = "# Copied from ch04/01_main-chapter-code/gpt.py::GPT_CONFIG_TINY\n"
    copy = write(tmp_path / "ch05/01_main-chapter-code/previous_chapters.py", "import torch\n\n"
                 + marker + CONSTANT.replace('"emb_dim": 8', '"emb_dim": 16'))

    assert messages(tmp_path) == [
        "GPT_CONFIG_TINY: ch05/01_main-chapter-code/previous_chapters.py differs from its "
        "home ch04/01_main-chapter-code/gpt.py"
    ]
    assert fix_copies(tmp_path, variants={}) == 1
    assert copy.read_text() == "import torch\n\n" + marker + CONSTANT
    assert messages(tmp_path) == []


def test_unmarked_copy_fails_and_fix_turns_the_informal_comment_into_its_marker(tmp_path):
    copy_file = make_tree(tmp_path, "# From chapter 2\n# Adds.\n" + HOME_SOURCE.rstrip("\n"),
                          marker=None)
    problems = find_problems(tmp_path, variants={})
    assert sorted((p.kind, p.path) for p in problems) == [
        ("unmarked", "ch03/01_main-chapter-code/previous_chapters.py"),
        ("unmarked", "ch04/01_main-chapter-code/ch04.ipynb"),
    ]
    assert all(HOME_MARKER in p.message for p in problems)

    assert fix_copies(tmp_path, variants={}) == 2
    assert messages(tmp_path) == []
    assert f"\n\n# Adds.\n{HOME_MARKER}\ndef add(" in copy_file.read_text()
    notebook = nbformat.read(tmp_path / "ch04/01_main-chapter-code/ch04.ipynb", as_version=4)
    assert notebook.cells[0].source.startswith(f"# Adds.\n{HOME_MARKER}\ndef add(")


def test_marker_naming_another_copy_is_normalised_to_the_home(tmp_path):
    copy_file = make_tree(tmp_path, HOME_SOURCE.rstrip("\n"))
    other_copy = "# Copied from ch04/01_main-chapter-code/ch04.ipynb::add"
    copy_file.write_text(copy_file.read_text().replace(HOME_MARKER, other_copy))
    (problem,) = find_problems(tmp_path, variants={})
    assert problem.kind == "marker" and HOME_MARKER in problem.message
    assert fix_copies(tmp_path, variants={}) == 1
    assert HOME_MARKER in copy_file.read_text() and other_copy not in copy_file.read_text()


def test_informal_comment_above_a_home_fails_and_fix_removes_it(tmp_path):
    home = write(tmp_path / "ch04/01_main-chapter-code/gpt.py",
                 "import torch\n\n\n# From chapter 3\n# Home: ch03/x.py\n" + HOME_SOURCE)
    (problem,) = find_problems(tmp_path, variants={})
    assert problem.kind == "informal"
    assert fix_copies(tmp_path, variants={}) == 1
    assert home.read_text() == "import torch\n\n\n" + HOME_SOURCE


def test_notebook_knobs_are_not_copies(tmp_path):
    """Two notebooks' `parameters` cells may set the same knob differently."""
    for chapter, epochs in (("ch04", 1), ("ch05", 10)):
        write_notebook(tmp_path / f"{chapter}/01_main-chapter-code/{chapter}.ipynb",
                       f"NUM_EPOCHS = {epochs}", tags=["parameters"])
    assert messages(tmp_path) == []


def test_drifted_whole_file_fails_and_fix_repairs_it(tmp_path):
    home_text = "def download_file(url):\n    return url\n"
    copy_text = f"# Copied from {DOWNLOADS_HOME}\n{home_text}"
    write(tmp_path / DOWNLOADS_HOME, home_text)
    write(tmp_path / "ch03/01_main-chapter-code/downloads.py", copy_text)
    drifted = write(tmp_path / "ch05/01_main-chapter-code/downloads.py", copy_text + "# edit\n")
    unmarked = write(tmp_path / "ch06/01_main-chapter-code/downloads.py", home_text)

    assert [message.split(" differs")[0] for message in messages(tmp_path)] == [
        "ch05/01_main-chapter-code/downloads.py", "ch06/01_main-chapter-code/downloads.py"]
    assert fix_copies(tmp_path, variants={}) == 2
    assert drifted.read_text() == copy_text and unmarked.read_text() == copy_text
    assert messages(tmp_path) == []


def test_unmarked_renamed_copy_fails_and_fix_adds_the_marker(tmp_path):
    write(tmp_path / "ch02/01_main-chapter-code/timing.py", HOME_SOURCE)
    renamed = write(tmp_path / "ch03/02_bonus/bench.py",
                    "import time\n\n\n" + HOME_SOURCE.replace("def add", "def _add"))

    (problem,) = find_problems(tmp_path, variants={})
    assert problem.kind == "unmarked" and problem.path == "ch03/02_bonus/bench.py"
    marker = "# Copied from ch02/01_main-chapter-code/timing.py::add with add->_add"
    assert marker in problem.message

    assert fix_copies(tmp_path, variants={}) == 1
    assert f"\n{marker}\ndef _add(" in renamed.read_text()
    assert messages(tmp_path) == []


def test_marked_renamed_copy_is_checked_against_its_source(tmp_path):
    write(tmp_path / "ch02/01_main-chapter-code/timing.py", HOME_SOURCE)
    marker = "# Copied from ch02/01_main-chapter-code/timing.py::add with add->plus\n"
    copy_text = marker + HOME_SOURCE.replace("def add", "def plus")
    renamed = write(tmp_path / "ch03/02_bonus/bench.py", copy_text.replace("a + b", "a + b + 1"))

    (problem,) = find_problems(tmp_path, variants={})
    assert problem.kind == "drift" and "plus: ch03/02_bonus/bench.py differs" in problem.message
    assert fix_copies(tmp_path, variants={}) == 1
    assert renamed.read_text() == copy_text
    assert messages(tmp_path) == []


def test_marker_naming_a_missing_source_fails(tmp_path):
    write(tmp_path / "ch03/02_bonus/bench.py",
          "# Copied from ch02/01_main-chapter-code/timing.py::add with add->plus\n"
          + HOME_SOURCE.replace("def add", "def plus"))
    (message,) = messages(tmp_path)
    assert "which does not exist" in message


def test_variants_with_one_reason_must_agree(tmp_path):
    """Variants registered for the same reason form a family checked among itself."""
    variant = HOME_SOURCE.replace("a + b", "a + b + 0").rstrip("\n")
    make_tree(tmp_path, variant, marker=None)
    write_notebook(tmp_path / "ch05/01_main-chapter-code/ch05.ipynb",
                   variant.replace("+ 0", "+ 1"))
    reason = "test family"
    variants = {
        ("add", "ch03/01_main-chapter-code/previous_chapters.py"): reason,
        ("add", "ch04/01_main-chapter-code/ch04.ipynb"): reason,
        ("add", "ch05/01_main-chapter-code/ch05.ipynb"): reason,
    }
    problems = [p for p in find_problems(tmp_path, variants=variants) if p.kind == "drift"]
    assert [problem.message for problem in problems] == [
        "add: ch05/01_main-chapter-code/ch05.ipynb (cell 0) differs from its home "
        "ch04/01_main-chapter-code/ch04.ipynb (cell 0)"
    ]


def test_package_copies_are_checked_and_never_become_homes(tmp_path):
    """pkg/ ranks last: a drifted package copy is the one reported, never the chapter."""
    write_notebook(tmp_path / "ch02/01_main-chapter-code/ch02.ipynb", HOME_SOURCE)
    write(tmp_path / "ch03/01_main-chapter-code/previous_chapters.py",
          "def only_copied():\n    return 1\n")
    package_module = "pkg/llms_from_scratch/ch02.py"
    write(tmp_path / package_module, HOME_SOURCE.replace("a + b", "b + a")
          + "\n\ndef only_copied():\n    return 2\n")

    problems = find_problems(tmp_path, variants={})
    assert sorted((p.message.split(":")[0], p.kind) for p in problems) == [
        ("add", "drift"), ("add", "unmarked"), ("only_copied", "drift"),
        ("only_copied", "unmarked")]
    assert {p.path for p in problems} == {package_module}

    assert fix_copies(tmp_path, variants={}) == 4
    assert find_problems(tmp_path, variants={}) == []
    assert "return 1" in (tmp_path / package_module).read_text()


def test_fix_writes_a_long_marker_with_a_noqa_for_the_line_length(tmp_path):
    home_path = ("ch02/02_bonus_a-folder-name-long-enough-to-push-the-marker-line"
                 "-past-the-limit/home.py")
    write(tmp_path / home_path, HOME_SOURCE)
    copy = write(tmp_path / "ch03/01_main-chapter-code/previous_chapters.py", HOME_SOURCE)
    assert fix_copies(tmp_path, variants={}) == 1
    marker_line = copy.read_text().split("\n")[0]
    assert marker_line == f"# Copied from {home_path}::add  # noqa: E501"
    assert messages(tmp_path) == []


def test_informal_comment_above_a_correct_marker_fails_and_fix_removes_it(tmp_path):
    copy_file = make_tree(tmp_path, HOME_SOURCE.rstrip("\n"))
    copy_file.write_text(copy_file.read_text().replace(HOME_MARKER,
                                                       "# From chapter 2\n" + HOME_MARKER))
    (problem,) = find_problems(tmp_path, variants={})
    assert problem.kind == "marker" and "informal" in problem.message
    assert fix_copies(tmp_path, variants={}) == 1
    assert "From chapter" not in copy_file.read_text()
    assert messages(tmp_path) == []
