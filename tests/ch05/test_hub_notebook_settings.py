"""The ch05 model notebooks run in the suite on the fake hub's tiny models.

tests/ch05/notebook_parameters.json injects CONFIG_OVERRIDES into each notebook and
names the hub repositories it downloads from (`hf_hub_repos`, served by
tests/support/fake_hub.py). Both must describe the same tiny model, or the notebooks'
loaders would (rightly) reject the checkpoints. And every cell that downloads from the
hub is tagged `pretrained-weights`: without access to the hub those cells are left empty
when the committed outputs are made.
"""

import ast

import nbformat
import pytest
from notebooks import PRETRAINED_TAG, REPO_ROOT, cell_tags, load_test_settings
from support.gemma3_checkpoints import TINY_GEMMA3_OVERRIDES
from support.gemma4_checkpoints import TINY_GEMMA4_OVERRIDES
from support.llama_checkpoints import (TINY_LLAMA2_OVERRIDES, TINY_LLAMA3_OVERRIDES,
                                       TINY_LLAMA32_OVERRIDES)
from support.olmo3_tiny_aya_checkpoints import TINY_AYA_OVERRIDES, TINY_OLMO3_OVERRIDES
from support.qwen3_5_checkpoints import TINY_QWEN3_5_OVERRIDES
from support.qwen3_checkpoints import TINY_MOE_OVERRIDES, TINY_QWEN3_OVERRIDES

SETTINGS = load_test_settings()
# Each notebook that loads a model from the hub, and the tiny model its repositories hold.
TINY_MODELS = {
    "07_gpt_to_llama/converting-gpt-to-llama2.ipynb": TINY_LLAMA2_OVERRIDES,
    # Llama 3 8B, 3.1 8B and 3.2 1B alike, each keeping its own RoPE settings
    "07_gpt_to_llama/converting-llama2-to-llama3.ipynb": TINY_LLAMA3_OVERRIDES,
    "07_gpt_to_llama/standalone-llama32.ipynb": TINY_LLAMA32_OVERRIDES,
    "11_qwen3/standalone-qwen3.ipynb": TINY_QWEN3_OVERRIDES,
    "11_qwen3/standalone-qwen3-plus-kvcache.ipynb": TINY_QWEN3_OVERRIDES,
    "11_qwen3/standalone-qwen3-moe.ipynb": TINY_MOE_OVERRIDES,
    "11_qwen3/standalone-qwen3-moe-plus-kvcache.ipynb": TINY_MOE_OVERRIDES,
    "12_gemma3/standalone-gemma3.ipynb": TINY_GEMMA3_OVERRIDES,
    "12_gemma3/standalone-gemma3-plus-kvcache.ipynb": TINY_GEMMA3_OVERRIDES,
    "13_olmo3/standalone-olmo3.ipynb": TINY_OLMO3_OVERRIDES,
    "13_olmo3/standalone-olmo3-plus-kv-cache.ipynb": TINY_OLMO3_OVERRIDES,
    "15_tiny-aya/standalone-tiny-aya.ipynb": TINY_AYA_OVERRIDES,
    "15_tiny-aya/standalone-tiny-aya-plus-kv-cache.ipynb": TINY_AYA_OVERRIDES,
    "16_qwen3.5/qwen3.5.ipynb": TINY_QWEN3_5_OVERRIDES,
    "16_qwen3.5/qwen3.5-plus-kv-cache.ipynb": TINY_QWEN3_5_OVERRIDES,
    "17_gemma4/standalone-gemma4.ipynb": TINY_GEMMA4_OVERRIDES,
    "17_gemma4/standalone-gemma4-plus-kvcache.ipynb": TINY_GEMMA4_OVERRIDES,
}
NOTEBOOKS = pytest.mark.parametrize("notebook", sorted(TINY_MODELS))


@NOTEBOOKS
def test_injected_config_is_the_fake_hubs_model(notebook):
    entry = SETTINGS[f"ch05/{notebook}"]
    assert entry["parameters"]["CONFIG_OVERRIDES"] == TINY_MODELS[notebook]
    assert entry["hf_hub_repos"]


def calls_the_hub(source):
    """True for a cell that downloads (not one that only defines a download helper)."""
    tree = ast.parse(source)
    return (any(call in source for call in ("hf_hub_download(", "snapshot_download("))
            and not any(isinstance(node, (ast.FunctionDef, ast.ClassDef)) for node in tree.body))


@NOTEBOOKS
def test_hub_downloads_are_tagged(notebook):
    nb = nbformat.read(REPO_ROOT / "ch05" / notebook, as_version=4)
    downloading = [cell for cell in nb.cells
                   if cell.cell_type == "code" and calls_the_hub(cell.source)]
    assert downloading
    assert all(PRETRAINED_TAG in cell_tags(cell) for cell in downloading)
