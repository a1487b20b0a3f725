"""Under CI (the environment variable CI set) missing data fails; elsewhere it skips.

Runs a small test file with this suite's conftest.py in a fresh pytest process,
once as a reader's machine and once as CI, and compares the outcomes.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_FOLDER = Path(__file__).parent
# Where a skip may mention the mirror: the rule itself, and the notebook runner,
# which skips only outside CI and re-raises the notebook's own error under CI.
MIRROR_RULE_FILES = {"conftest.py", "test_notebooks.py"}

TESTS = '''
import pytest


class DownloadError(RuntimeError):
    """Stands for downloads.DownloadError (the hook matches the class name)."""


@pytest.mark.needs_mirror("the-verdict.txt")
def test_marked():
    pass


def test_fixture(needs_mirror):
    pass


def test_download_fails():
    raise DownloadError("could not download the-verdict.txt")


def test_plain():
    pass
'''


def outcomes(tmp_path, ci):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_data.py").write_text(TESTS)
    env = {key: value for key, value in os.environ.items()
           if key not in ("CI", "LLMS_FROM_SCRATCH_MIRROR")}
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:xdist",
         "test_data.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    # "test_data.py::test_marked SKIPPED (needs ...)", "test_data.py::test_marked ERROR"
    return {words[0].split("::")[1]: words[1]
            for words in map(str.split, result.stdout.splitlines())
            if len(words) > 1 and words[0].startswith("test_data.py::")}


@pytest.mark.parametrize("ci, expected", [
    (False, {"test_marked": "SKIPPED", "test_fixture": "SKIPPED",
             "test_download_fails": "SKIPPED", "test_plain": "PASSED"}),
    (True, {"test_marked": "ERROR", "test_fixture": "ERROR",
            "test_download_fails": "FAILED", "test_plain": "PASSED"}),
], ids=["reader", "ci"])
def test_missing_data_skips_except_under_ci(tmp_path, ci, expected):
    assert outcomes(tmp_path, ci) == expected


def test_no_test_skips_on_a_missing_mirror_by_hand():
    """`pytest.skip`/`skipif` about the mirror would skip under CI too: use needs_mirror."""
    offenders = []
    for path in sorted(TESTS_FOLDER.rglob("*.py")):
        if path.relative_to(TESTS_FOLDER).as_posix() in MIRROR_RULE_FILES:
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("skip", "skipif")
                    and "MIRROR" in (ast.get_source_segment(source, node) or "")):
                offenders.append(f"{path.relative_to(TESTS_FOLDER)}:{node.lineno}")
    assert not offenders, offenders
