"""Section 4.2's layer-normalization walkthrough, called as the book calls it.

The book computes the unbiased variance in the walkthrough (mean
[[0.1324], [0.2170]], variance [[0.0231], [0.0398]]) and then builds
`LayerNorm` with the biased one. Both the values and the notebook's printed
outputs (made by tools/refresh_notebook.py) must show the book's numbers.
"""

import nbformat
import torch
import torch.nn as nn
from support.course_imports import REPO_ROOT, import_course_module

gpt = import_course_module("ch04/01_main-chapter-code/gpt.py")
NOTEBOOK = REPO_ROOT / "ch04/01_main-chapter-code/ch04.ipynb"


def book_layer_output():
    torch.manual_seed(123)
    batch_example = torch.randn(2, 5)
    layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
    return batch_example, layer(batch_example)


def test_walkthrough_values_are_the_books():
    _, out = book_layer_output()
    mean = out.mean(dim=-1, keepdim=True)
    var = out.var(dim=-1, keepdim=True)
    torch.testing.assert_close(mean, torch.tensor([[0.1324], [0.2170]]), atol=5e-5, rtol=0)
    torch.testing.assert_close(var, torch.tensor([[0.0231], [0.0398]]), atol=5e-5, rtol=0)
    out_norm = (out - mean) / torch.sqrt(var)
    torch.testing.assert_close(out_norm.var(dim=-1, keepdim=True), torch.ones(2, 1))


def test_layer_norm_uses_the_biased_variance():
    batch_example, _ = book_layer_output()
    ln = gpt.LayerNorm(emb_dim=5)
    out_ln = ln(batch_example)
    torch.testing.assert_close(out_ln.mean(dim=-1, keepdim=True), torch.zeros(2, 1),
                               atol=1e-6, rtol=0)
    # biased variance 1 (up to eps); the unbiased one is n / (n - 1) = 5 / 4 larger
    biased = out_ln.var(dim=-1, keepdim=True, unbiased=False)
    torch.testing.assert_close(biased, torch.ones(2, 1), atol=1e-3, rtol=0)
    torch.testing.assert_close(out_ln.var(dim=-1, keepdim=True), biased * 5 / 4)
    reference = torch.nn.functional.layer_norm(batch_example, (5,), eps=1e-5)
    torch.testing.assert_close(out_ln, reference)


def test_notebook_prints_the_books_values():
    outputs = []
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        if cell.cell_type == "code" and cell.source.startswith("mean = out.mean("):
            outputs = [out.get("text", "") for out in cell.outputs]
    printed = "".join(outputs)
    assert "[[0.1324]," in printed and "[0.2170]]" in printed
    assert "[[0.0231]," in printed and "[0.0398]]" in printed
