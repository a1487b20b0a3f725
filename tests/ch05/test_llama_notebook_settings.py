"""The Llama notebooks' cells stand alone, and the suite runs what the book runs.

The suite runs the Llama notebooks with CONFIG_OVERRIDES from notebook_parameters.json
and serves them hub files written by tests/support/llama_checkpoints.py (the table of
every hub notebook's tiny model is in test_hub_notebook_settings.py); here: the real RoPE
settings the fake Llama 3 repositories keep, and the book's loads in tagged cells.
"""

import ast
import json
from pathlib import Path

from support import llama_checkpoints
import nbformat
import pytest
from support.course_imports import course_folder_on_path, notebook_definitions
from notebooks import PRETRAINED_TAG, REPO_ROOT, cell_tags

SETTINGS = json.loads((Path(__file__).parent / "notebook_parameters.json").read_text())
FOLDER = "ch05/07_gpt_to_llama/"


LLAMA_NOTEBOOKS = ["converting-gpt-to-llama2.ipynb", "converting-llama2-to-llama3.ipynb",
                   "standalone-llama32.ipynb"]


def imported_names(nodes):
    return {alias.asname or alias.name.split(".")[0]
            for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names}


@pytest.mark.parametrize("notebook", LLAMA_NOTEBOOKS)
def test_every_definition_cell_carries_its_own_imports(notebook):
    """The book repository's tests run each definition cell on its own.

    So a cell that defines a function or class imports every module-level name
    its definitions use (torch, nn, F, tiktoken, ...), even if an earlier cell
    imported it already; and the cell's imports and definitions run by themselves.
    """
    nb = nbformat.read(REPO_ROOT / FOLDER / notebook, as_version=4)
    trees = [ast.parse(cell.source) for cell in nb.cells if cell.cell_type == "code"]
    everywhere = imported_names(node for tree in trees for node in tree.body)
    checked = 0
    for tree in trees:
        definitions = [node for node in tree.body
                       if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        if not definitions:
            continue
        used = {node.id for d in definitions for node in ast.walk(d)
                if isinstance(node, ast.Name)}
        missing = (used & everywhere) - imported_names(tree.body)
        assert not missing, f"{notebook}: a cell defining {definitions[0].name} lacks {missing}"
        alone = ast.Module(body=[node for node in tree.body if isinstance(
            node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))], type_ignores=[])
        with course_folder_on_path(REPO_ROOT / FOLDER):
            exec(compile(alone, notebook, "exec"), {"__name__": "cell_alone"})
        checked += 1
    assert checked >= 5


def test_llama3_notebook_suite_config_matches_the_fake_checkpoints():
    """converting-llama2-to-llama3.ipynb's overrides, and the real RoPE settings, as faked."""
    settings = SETTINGS[FOLDER + "converting-llama2-to-llama3.ipynb"]["parameters"]
    assert settings["CONFIG_OVERRIDES"] == llama_checkpoints.TINY_LLAMA3_OVERRIDES
    nb = notebook_definitions("ch05/07_gpt_to_llama/converting-llama2-to-llama3.ipynb")
    assert nb.LLAMA3_CONFIG_8B["rope_freq"] == llama_checkpoints.REAL_ROPE_FREQ["llama3"]
    assert nb.LLAMA31_CONFIG_8B["rope_freq"] == llama_checkpoints.REAL_ROPE_FREQ["llama3.1"]
    assert nb.LLAMA32_CONFIG_1B["rope_freq"] == llama_checkpoints.REAL_ROPE_FREQ["llama3.2"]


@pytest.mark.parametrize("notebook, repo_ids", [
    ("converting-gpt-to-llama2.ipynb", ["LLAMA2_ORIGINAL_REPO_ID", "LLAMA2_CHAT_REPO_ID"]),
    ("converting-llama2-to-llama3.ipynb",
     ["LLAMA3_REPO_ID", "LLAMA31_REPO_ID", "LLAMA32_REPO_ID"]),
])
def test_the_books_models_are_loaded_and_generate(notebook, repo_ids):
    """Llama 2's original and chat checkpoints; Llama 3 8B, 3.1 8B and 3.2 1B: each is
    downloaded, loaded with the book's three-argument loader and generates, in a tagged cell
    (run by the suite against the fake repositories)."""
    nb = nbformat.read(REPO_ROOT / FOLDER / notebook, as_version=4)
    tagged = [cell.source for cell in nb.cells
              if cell.cell_type == "code" and PRETRAINED_TAG in cell_tags(cell)]
    for repo_id in repo_ids:
        (source,) = [s for s in tagged if f"repo_id={repo_id}" in s and "Model(" in s]
        assert "load_weights_into_llama(" in source and ("generate(" in source
                                                         or "complete(" in source)
