"""The tiny models the notebooks are given in the suite match the fake hub files.

The suite runs the Llama notebooks with CONFIG_OVERRIDES from
notebook_parameters.json and serves them hub files written by
tests/llama_checkpoints.py; both must describe the same tiny models, or the
notebooks' loaders would (rightly) reject the checkpoints.
"""

import json
from pathlib import Path

import llama_checkpoints
import nbformat
import pytest
from notebooks import PRETRAINED_TAG, REPO_ROOT, cell_tags

SETTINGS = json.loads((Path(__file__).parent / "notebook_parameters.json").read_text())
FOLDER = "ch05/07_gpt_to_llama/"


@pytest.mark.parametrize("notebook, overrides", [
    ("converting-gpt-to-llama2.ipynb", llama_checkpoints.TINY_LLAMA2_OVERRIDES),
    ("standalone-llama32.ipynb", llama_checkpoints.TINY_LLAMA32_OVERRIDES),
])
def test_injected_configs_match_the_fake_checkpoints(notebook, overrides):
    assert SETTINGS[FOLDER + notebook]["parameters"]["CONFIG_OVERRIDES"] == overrides


@pytest.mark.parametrize("notebook", sorted(n for n in SETTINGS if n.startswith(FOLDER)))
def test_hub_downloads_are_tagged_and_served(notebook):
    """Every cell that downloads from the hub is tagged, and its repositories are faked."""
    assert set(SETTINGS[notebook]["hf_hub_repos"]) <= set(llama_checkpoints.REPO_WRITERS)
    nb = nbformat.read(REPO_ROOT / notebook, as_version=4)
    downloading = [cell for cell in nb.cells
                   if cell.cell_type == "code" and "hf_hub_download(" in cell.source]
    assert downloading
    assert all(PRETRAINED_TAG in cell_tags(cell) for cell in downloading)
