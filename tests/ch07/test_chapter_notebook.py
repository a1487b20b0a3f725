"""ch07.ipynb has the book's closing sections and exercise 7.1's note on special tokens."""

import json

import pytest
from support.course_imports import REPO_ROOT

NOTEBOOK = REPO_ROOT / "ch07/01_main-chapter-code/ch07.ipynb"


@pytest.fixture(scope="module")
def cells():
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def headings(cells):
    return [line for cell in cells if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines() if line.startswith("#")]


def test_closing_sections_and_summary_in_the_books_order(cells):
    found = headings(cells)
    closing = ["## 7.9 Conclusions", "### 7.9.1 What's next?",
               "### 7.9.2 Staying up to date in a fast-moving field", "### 7.9.3 Final words",
               "## Summary"]
    assert [heading for heading in found if heading in closing] == closing
    assert found[-len(closing):] == closing  # they close the chapter


def test_special_token_note_shows_gpt2s_split_of_phi3_markers(cells, tokenizer):
    """The committed output equals what tiktoken's GPT-2 encoding gives for each marker."""
    index = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code"
                 and "for marker in" in "".join(cell["source"]))
    assert "exercise 7.1" in "".join(cells[index - 1]["source"])
    shown = "".join(cells[index]["outputs"][0]["text"])
    for marker in ["<|user|>", "<|assistant|>", "<|assistant|>:", "<|endoftext|>"]:
        ids = tokenizer.encode(marker, disallowed_special=())
        pieces = [tokenizer.decode([token_id]) for token_id in ids]
        assert f"{marker!r:18} {len(ids)} tokens: {pieces}" in shown
        assert len(ids) > 1  # none of them is one GPT-2 token as plain text
    assert tokenizer.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50256]
    assert "Special tokens of GPT-2's tokenizer: {'<|endoftext|>'}" in shown
