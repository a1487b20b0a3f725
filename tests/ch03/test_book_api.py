"""Chapter 3's bonus attention classes called exactly as the book calls them.

The book's notebook builds each class with keyword arguments (d_in, d_out,
context_length, dropout, num_heads, qkv_bias) and expects the same output
shape from all of them; `MHAEinsum` keeps its weights as (d_in, d_out)
matrices. The notebook itself must define every class it explains.
"""

import ast

import nbformat
import pytest
import torch
import torch.nn.functional as F
from support.course_imports import REPO_ROOT, import_course_module

FOLDER = "ch03/02_bonus_efficient-multihead-attention"
mha = import_course_module(f"{FOLDER}/mha_implementations.py")

BOOK_CLASSES = [
    "MultiHeadAttentionCombinedQKV", "MHAEinsum", "MHAPyTorchScaledDotProduct",
    "MHAPyTorchSDPAWithoutFlash", "MHAPyTorchClass", "MHAPyTorchFlexAttention",
]
BATCH, CONTEXT, EMBED = 2, 6, 48


def book_kwargs(**changes):
    return {"d_in": EMBED, "d_out": EMBED, "context_length": CONTEXT, "dropout": 0.0,
            "num_heads": 12, "qkv_bias": False, **changes}


def test_notebook_defines_every_class_inline():
    nb = nbformat.read(REPO_ROOT / FOLDER / "mha-implementations.ipynb", as_version=4)
    defined = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.ClassDef):
                    defined.add(node.name)
    # `class` statements only: the book repository's helper that imports a
    # notebook's definitions keeps `def` and `class`, not assignments
    assert {"Ch03_MHA_Wrapper", "Ch03_MHA", *BOOK_CLASSES} <= defined


def test_chapter_classes_under_the_books_names():
    torch.manual_seed(123)
    embeddings = torch.randn(BATCH, CONTEXT, EMBED)
    wrapper = mha.Ch03_MHA_Wrapper(**book_kwargs(d_out=EMBED // 12))  # d_out per head
    assert isinstance(wrapper, mha.MultiHeadAttentionWrapper)
    assert wrapper(embeddings).shape == (BATCH, CONTEXT, EMBED)
    assert issubclass(mha.Ch03_MHA, mha.MultiHeadAttention)
    assert mha.Ch03_MHA(**book_kwargs())(embeddings).shape == (BATCH, CONTEXT, EMBED)


# FlexAttention's first call takes many seconds on a CPU; test_efficient_mha covers it.
@pytest.mark.parametrize("name", [n for n in BOOK_CLASSES if n != "MHAPyTorchFlexAttention"])
def test_book_call_gives_the_books_shape(name):
    torch.manual_seed(123)
    module = getattr(mha, name)(**book_kwargs())
    with torch.no_grad():
        assert module(torch.randn(BATCH, CONTEXT, EMBED)).shape == (BATCH, CONTEXT, EMBED)


def test_pytorch_class_takes_need_weights():
    assert mha.MHAPyTorchClass(**book_kwargs()).need_weights is True
    assert mha.MHAPyTorchClass(**book_kwargs(), need_weights=False).need_weights is False


def test_einsum_stores_weights_in_the_books_layout():
    torch.manual_seed(0)
    d_in, d_out, heads = 8, 12, 3
    module = mha.MHAEinsum(d_in=d_in, d_out=d_out, context_length=CONTEXT, dropout=0.0,
                           num_heads=heads, qkv_bias=True)
    for weight in (module.W_query, module.W_key, module.W_value):
        assert weight.shape == (d_in, d_out)
    # Initialised like nn.Linear(d_in, d_out): uniform within +-1/sqrt(d_in)
    assert module.W_query.abs().max() <= d_in**-0.5
    assert module.W_query.abs().max() > 0.8 * d_in**-0.5

    # The projection is x @ W (the book's einsum), checked against SDPA in float64.
    x = torch.randn(BATCH, CONTEXT, d_in)
    with torch.no_grad():
        actual = module(x)
        xd = x.double()

        def heads_of(weight, bias):
            projected = xd @ weight.double() + bias.double()
            return projected.view(BATCH, CONTEXT, heads, -1).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            heads_of(module.W_query, module.b_query), heads_of(module.W_key, module.b_key),
            heads_of(module.W_value, module.b_value), is_causal=True,
        ).transpose(1, 2).reshape(BATCH, CONTEXT, d_out)
        expected = F.linear(context, module.out_proj.weight.double(),
                            module.out_proj.bias.double())
    torch.testing.assert_close(actual, expected.float(), atol=1e-5, rtol=1e-4)
