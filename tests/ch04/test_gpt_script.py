"""gpt.py: the book's `main()` prints the book's output for "Hello, I am"."""

import ast
import re
import sys

import pytest
from support.course_imports import import_course_module
from support.helpers import run_script_in_process

BOOK_TEXT = "Hello, I am Featureiman Byeswickattribute argue logger Normandy Compton analogous"
BOOK_IDS = [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267, 49706, 43231,
            47062, 34657]


def test_gpt_script_has_help(tmp_path):
    result = run_script_in_process("ch04/01_main-chapter-code/gpt.py", ["--help"], tmp_path)
    assert result.returncode == 0 and "--max-new-tokens" in result.stdout


BOOK_OUTPUT = f"""
{50 * "="}
{22 * " "}IN
{50 * "="}

Input text: Hello, I am
Encoded input text: [15496, 11, 314, 716]
encoded_tensor.shape: torch.Size([1, 4])


{50 * "="}
{22 * " "}OUT
{50 * "="}

Output: tensor([[15496,    11,   314,   716, 27018, 24086, 47843, 30961, 42348,  7267,
         49706, 43231, 47062, 34657]])
Output length: 14
Output text: {BOOK_TEXT}
"""


@pytest.mark.slow
def test_main_called_from_python_as_the_book_does_prints_the_books_output(
        capsys, monkeypatch):
    # The book calls main() with no arguments; a stray command line must not matter.
    monkeypatch.setattr(sys, "argv", ["pytest", "--not-a-gpt-flag"])
    gpt = import_course_module("ch04/01_main-chapter-code/gpt.py")
    assert gpt.main() is None
    stdout = capsys.readouterr().out
    assert stdout == BOOK_OUTPUT
    printed = re.search(r"Output: tensor\((\[\[.*?\]\])\)", stdout, re.DOTALL).group(1)
    assert ast.literal_eval(printed) == [BOOK_IDS]
