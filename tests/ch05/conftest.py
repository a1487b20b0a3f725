"""Fixtures the model-family tests of chapter 5's bonus folders share.

A test module that compares a folder's notebooks with Hugging Face names them in two
constants, `FOLDER` and `NOTEBOOKS` ({key: notebook file}), and provides the fixtures
`hf_model` (the transformers reference) and `token_ids`; `nbs` and `hf_logits` follow.
"""

import pytest
import torch
from support.course_imports import notebook_definitions


@pytest.fixture(scope="module")
def nbs(request):
    """{key: the notebook's definitions} for the test module's NOTEBOOKS in its FOLDER."""
    folder, notebooks = request.module.FOLDER, request.module.NOTEBOOKS
    return {key: notebook_definitions(f"{folder}/{name}") for key, name in notebooks.items()}


@pytest.fixture(scope="module")
def hf_logits(hf_model, token_ids):
    """The reference model's logits for `token_ids`."""
    with torch.no_grad():
        return hf_model(token_ids).logits
