"""llama3-ollama.ipynb shows the book's published sample where its LLM cells are empty."""

import json

from support.course_imports import REPO_ROOT, import_course_module

NOTEBOOK = "ch07/05_dataset-generation/llama3-ollama.ipynb"
SAMPLE_URL = ("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
              "05_dataset-generation/instruction-data-llama3-7b.json")


def test_dataset_generation_notebook_shows_the_books_sample(tmp_path):
    download_file = import_course_module("ch07/05_dataset-generation/downloads.py").download_file
    sample = json.loads(download_file(SAMPLE_URL, tmp_path / "sample.json").read_text())
    cells = json.loads((REPO_ROOT / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    llm_cells = [cell for cell in cells if "llm-server" in cell["metadata"].get("tags", [])]
    assert llm_cells and not any(cell["outputs"] for cell in llm_cells)  # no server here
    last = cells[-1]
    assert last["cell_type"] == "code" and "llm-server" not in last["metadata"].get("tags", [])
    shown = "".join(last["outputs"][0]["text"])
    assert shown.startswith(f"{len(sample)} examples, fields: ['instruction', 'output']")
    for example in sample:
        assert f"Instruction:\n>> {example['instruction']}\n" in shown
        assert f"Output:\n>> {example['output'][:400]}" in shown
    assert "Unusable (no instruction or no answer): 1, at [2]" in shown
