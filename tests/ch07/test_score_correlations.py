"""scores/correlation-analysis.ipynb: the judges' agreement, checked by hand-written statistics.

The references below are the textbook definitions in plain Python (Pearson's r,
Spearman's rho as Pearson's r of average ranks, Kendall's tau-b by counting
concordant and discordant pairs), applied to the book's published score files.
"""

import json
import math
import subprocess
from itertools import combinations

import pytest
from support.course_imports import REPO_ROOT, import_course_module, notebook_definitions

FOLDER = "ch07/03_model-evaluation/scores"
NOTEBOOK = f"{FOLDER}/correlation-analysis.ipynb"
BOOK_URL = ("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
            "03_model-evaluation/scores")


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def average_ranks(values):
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):  # ties share the mean of their ranks
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def kendall_tau_b(x, y):
    concordant = discordant = ties_x = ties_y = 0
    for i, j in combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            ties_x += 1
        elif dy == 0:
            ties_y += 1
        elif dx * dy > 0:
            concordant += 1
        else:
            discordant += 1
    return (concordant - discordant) / math.sqrt(
        (concordant + discordant + ties_x) * (concordant + discordant + ties_y))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """{file stem: scores} of the four files, through the course's download helper."""
    download_file = import_course_module(f"{FOLDER}/downloads.py").download_file
    folder = tmp_path_factory.mktemp("ch07-scores")
    names = ["gpt4-model-1-response", "gpt4-model-2-response",
             "llama3-8b-model-1-response", "llama3-8b-model-2-response"]
    return {name: json.loads(download_file(f"{BOOK_URL}/{name}.json",
                                           folder / f"{name}.json").read_text())
            for name in names}


@pytest.fixture(scope="module")
def notebook():
    return notebook_definitions(NOTEBOOK, ["judge_correlations", "correlation_if_dropped"])


def test_correlations_equal_the_textbook_definitions(notebook, published):
    gpt4, llama3 = published["gpt4-model-1-response"], published["llama3-8b-model-1-response"]
    result = notebook.judge_correlations(gpt4, llama3)
    assert result["Pearson"] == pytest.approx(pearson(gpt4, llama3), abs=1e-12)
    assert result["Spearman"] == pytest.approx(
        pearson(average_ranks(gpt4), average_ranks(llama3)), abs=1e-12)
    assert result["Kendall"] == pytest.approx(kendall_tau_b(gpt4, llama3), abs=1e-12)


def test_the_dropped_position_is_found():
    """A score removed from a copy is located where the copy lines up again."""
    import numpy as np

    notebook = notebook_definitions(NOTEBOOK, ["correlation_if_dropped"])
    full = np.random.default_rng(0).integers(0, 101, size=40).astype(float)
    shorter = np.delete(full, 17) + np.random.default_rng(1).normal(0, 3, size=39)
    assert int(np.argmax(notebook.correlation_if_dropped(full, shorter))) == 17


def test_committed_outputs_match_the_published_files(published):
    """The notebook's saved table shows the values the references give on the book's files."""
    cells = json.loads((REPO_ROOT / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    outputs = "".join("".join(output.get("text", "")) for cell in cells
                      if cell["cell_type"] == "code" for output in cell["outputs"])
    gpt4_1, llama3_1 = published["gpt4-model-1-response"], published["llama3-8b-model-1-response"]
    gpt4_2, llama3_2 = published["gpt4-model-2-response"], published["llama3-8b-model-2-response"]
    assert (len(gpt4_2), len(llama3_2)) == (100, 99)  # one of Llama 3's scores is missing
    rows = {"model 1": (gpt4_1, llama3_1), "model 2": (gpt4_2[:97], llama3_2[:97])}
    rows["both models"] = (gpt4_1 + gpt4_2[:97], llama3_1 + llama3_2[:97])
    for name, (x, y) in rows.items():
        expected = (f"{name:<20} {len(x):>7} {pearson(x, y):>8.3f} "
                    f"{pearson(average_ranks(x), average_ranks(y)):>9.3f} "
                    f"{kendall_tau_b(x, y):>8.3f}")
        assert expected in outputs
    assert f"GPT-4  model 1     100 {sum(gpt4_1) / 100:>6.2f}" in outputs
    assert "Best alignment if the missing answer is one of [97, 98, 99]" in outputs


@pytest.mark.parametrize("name", ["llm-instruction-eval-ollama.ipynb",
                                  "llm-instruction-eval-openai.ipynb"])
def test_judge_notebooks_ran_on_the_books_published_answers(name, tmp_path):
    """Their committed data cell shows the book's 100 entries, downloaded (no own copy)."""
    download_file = import_course_module(f"{FOLDER}/downloads.py").download_file
    book = json.loads(download_file(
        "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/"
        "03_model-evaluation/eval-example-data.json", tmp_path / "eval-example-data.json",
    ).read_text(encoding="utf-8"))
    cells = json.loads((REPO_ROOT / "ch07/03_model-evaluation" / name).read_text())["cells"]
    data_cell = next(cell for cell in cells if "eval-example-data.json" in "".join(
        cell["source"]) and cell["cell_type"] == "code")
    assert "download_file(EVAL_DATA_URL" in "".join(data_cell["source"])
    shown = "".join(data_cell["outputs"][0]["text"])
    assert shown == (f"Number of entries: {len(book)}\n"
                     f"{json.dumps(book[0], indent=2)}\n")
    assert len(book) == 100
    tracked = subprocess.run(["git", "ls-files", "ch07/03_model-evaluation"], cwd=REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    assert "ch07/03_model-evaluation/eval-example-data.json" not in tracked
