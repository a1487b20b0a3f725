"""Bonus 03: nn.Embedding equals one-hot x nn.Linear in values and gradients."""

import re

import pytest
import torch
import torch.nn as nn
from support.course_imports import import_course_module
from support.helpers import run_script

FOLDER = "ch02/03_bonus_embedding-vs-matmul"
bonus = import_course_module(f"{FOLDER}/embedding_vs_matmul.py")


def make_layers(vocab_size=50, emb_dim=8, seed=0):
    torch.manual_seed(seed)
    embedding = nn.Embedding(vocab_size, emb_dim)
    return embedding, bonus.linear_layer_like(embedding)


def test_linear_layer_holds_the_transposed_embedding_matrix():
    embedding, linear = make_layers()
    assert linear.bias is None
    assert linear.weight.shape == (8, 50)
    assert torch.equal(linear.weight, embedding.weight.T)
    # a copy, not a view: training one layer must not change the other
    assert linear.weight.data_ptr() != embedding.weight.data_ptr()


def test_one_hot_product_equals_lookup_exactly():
    embedding, linear = make_layers()
    token_ids = torch.tensor([[3, 0, 49], [7, 7, 12]])
    assert torch.equal(bonus.one_hot_times_linear(linear, token_ids), embedding(token_ids))


def test_gradients_equal_and_repeated_ids_accumulate():
    embedding, linear = make_layers()
    token_ids = torch.tensor([4, 9, 4, 4, 1])
    differences = bonus.compare_embedding_and_linear(embedding, linear, token_ids, seed=1)
    assert differences["output"] == 0.0
    # equal up to rounding: repeated ids are summed in a different order
    assert differences["gradient"] <= 1e-6

    # an independent reference: each used row's gradient is the sum of the
    # upstream rows of its occurrences; unused rows get zero
    upstream = torch.randn((5, 8), generator=torch.Generator().manual_seed(1))
    expected = torch.zeros(50, 8).index_add_(0, token_ids, upstream)
    torch.testing.assert_close(embedding.weight.grad, expected)
    torch.testing.assert_close(linear.weight.grad.T, expected)


def test_comparison_detects_different_weights():
    embedding, linear = make_layers()
    with torch.no_grad():
        linear.weight[2, 4] += 0.5
    differences = bonus.compare_embedding_and_linear(embedding, linear, torch.tensor([4, 5]))
    assert differences["output"] == pytest.approx(0.5, abs=1e-6)


@pytest.mark.slow  # starts a Python process that imports torch
def test_script_reports_zero_differences_and_timings():
    result = run_script(f"{FOLDER}/embedding_vs_matmul.py", "--vocab-size", "300",
                        "--emb-dim", "16", "--num-tokens", "64", "--repeats", "1",
                        "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "largest output difference:   0\n" in result.stdout
    gradient_difference = re.search(r"largest gradient difference: (\S+)", result.stdout)
    assert float(gradient_difference.group(1)) <= 1e-6
    assert "| embedding lookup |" in result.stdout
    assert "| one-hot @ linear |" in result.stdout
