"""`python gpt.py` reproduces the book's output for "Hello, I am"."""

import ast
import re
import subprocess
import sys

import pytest
from course_imports import REPO_ROOT

SCRIPT_DIR = REPO_ROOT / "ch04" / "01_main-chapter-code"
BOOK_TEXT = "Hello, I am Featureiman Byeswickattribute argue logger Normandy Compton analogous"
BOOK_IDS = [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267, 49706, 43231,
            47062, 34657]


def run_gpt_script(*args):
    result = subprocess.run(
        [sys.executable, "gpt.py", *args], cwd=SCRIPT_DIR,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_gpt_script_prints_the_books_text_and_ids():
    stdout = run_gpt_script()
    assert "Encoded input text: [15496, 11, 314, 716]" in stdout
    assert f"Output text: {BOOK_TEXT}\n" in stdout
    printed = re.search(r"Output: tensor\((\[\[.*?\]\])\)", stdout, re.DOTALL).group(1)
    assert ast.literal_eval(printed) == [BOOK_IDS]
    assert "Output length: 14" in stdout


def test_gpt_script_has_help():
    assert "--max-new-tokens" in run_gpt_script("--help")
