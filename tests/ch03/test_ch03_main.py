"""Chapter 3's notebook code: the book's figures and independent re-computations.

The classes and variables are taken from `ch03.ipynb` itself, by running its
code cells in one namespace (they are quick), so the tests check the code a
reader sees. Every seeded output is recomputed here from the module's own
weights with plain tensor operations (tolerance 1e-4, like the printed
figures); the book's printed values are checked too where the issue lists them.
"""

import math

import pytest
import torch
from support.course_imports import REPO_ROOT, notebook_definitions

CHAPTER = REPO_ROOT / "ch03/01_main-chapter-code"
ATOL = 1e-4


@pytest.fixture(scope="module")
def ch03():
    return vars(notebook_definitions(CHAPTER / "ch03.ipynb", whole_cells=True))


def test_simplified_attention_context_vectors_match_book(ch03):
    book = torch.tensor([
        [0.4421, 0.5931, 0.5790],
        [0.4419, 0.6515, 0.5683],
        [0.4431, 0.6496, 0.5671],
        [0.4304, 0.6298, 0.5510],
        [0.4671, 0.5910, 0.5266],
        [0.4177, 0.6503, 0.5645],
    ])
    torch.testing.assert_close(ch03["all_context_vecs"], book, atol=ATOL, rtol=0)


def test_loop_version_equals_matrix_version(ch03):
    inputs = ch03["inputs"]
    by_loops = torch.empty(6, 3)
    for i in range(6):
        scores = torch.tensor([float(inputs[i] @ inputs[j]) for j in range(6)])
        weights = [math.exp(s) / sum(math.exp(t) for t in scores) for s in scores]
        by_loops[i] = sum(w * inputs[j] for j, w in enumerate(weights))
    torch.testing.assert_close(ch03["all_context_vecs"], by_loops, atol=1e-6, rtol=0)


def scaled_dot_product(x, w_query, w_key, w_value):
    """Reference self-attention for (tokens, d_in) input and (d_in, d_out) matrices."""
    queries, keys, values = x @ w_query, x @ w_key, x @ w_value
    scores = queries @ keys.T / math.sqrt(keys.shape[-1])
    return torch.softmax(scores, dim=-1) @ values


def causal_reference(x, w_query, w_key, w_value):
    """Causal version for (batch, tokens, d_in): scores of later tokens excluded."""
    queries, keys, values = x @ w_query, x @ w_key, x @ w_value
    num_tokens = x.shape[1]
    out = torch.empty(x.shape[0], num_tokens, w_value.shape[1])
    for t in range(num_tokens):  # token t attends to tokens 0..t only
        scores = queries[:, t:t + 1] @ keys[:, :t + 1].transpose(1, 2)
        weights = torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1)
        out[:, t] = (weights @ values[:, :t + 1])[:, 0]
    return out


def test_self_attention_v1_seed_123(ch03):
    torch.manual_seed(123)
    module = ch03["SelfAttention_v1"](3, 2)
    x = ch03["inputs"]
    with torch.no_grad():
        actual = module(x)
        expected = scaled_dot_product(x, module.W_query, module.W_key, module.W_value)
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(actual[0], torch.tensor([0.2996, 0.8053]), atol=ATOL, rtol=0)


def test_self_attention_v2_seed_789(ch03):
    torch.manual_seed(789)
    module = ch03["SelfAttention_v2"](3, 2)
    x = ch03["inputs"]
    with torch.no_grad():
        actual = module(x)
        expected = scaled_dot_product(
            x, module.W_query.weight.T, module.W_key.weight.T, module.W_value.weight.T
        )
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(actual[0], torch.tensor([-0.0739, 0.0713]), atol=ATOL, rtol=0)


def test_notebook_copies_v2_weights_into_v1(ch03):
    with torch.no_grad():
        torch.testing.assert_close(ch03["sa_v1"](ch03["inputs"]), ch03["sa_v2"](ch03["inputs"]))


def test_both_causal_masking_ways_agree(ch03):
    torch.testing.assert_close(ch03["attn_weights"], ch03["masked_simple_norm"])
    assert torch.all(ch03["attn_weights"].triu(diagonal=1) == 0)


def test_causal_attention_seed_123(ch03):
    torch.manual_seed(123)
    module = ch03["CausalAttention"](3, 2, 6, 0.0)
    batch = ch03["batch"]
    with torch.no_grad():
        actual = module(batch)
        expected = causal_reference(batch, module.W_query.weight.T, module.W_key.weight.T,
                                    module.W_value.weight.T)
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(actual[0, 0], torch.tensor([-0.4519, 0.2216]), atol=ATOL, rtol=0)


def test_wrapper_concatenates_independent_heads(ch03):
    torch.manual_seed(123)
    module = ch03["MultiHeadAttentionWrapper"](3, 2, 6, 0.0, num_heads=2)
    batch = ch03["batch"]
    with torch.no_grad():
        actual = module(batch)
        expected = torch.cat([
            causal_reference(batch, h.W_query.weight.T, h.W_key.weight.T, h.W_value.weight.T)
            for h in module.heads
        ], dim=-1)
    assert actual.shape == (2, 6, 4)
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)


def test_multi_head_attention_seed_123(ch03):
    torch.manual_seed(123)
    module = ch03["MultiHeadAttention"](3, 2, 6, 0.0, num_heads=2)
    batch = ch03["batch"]
    with torch.no_grad():
        actual = module(batch)
        heads = []
        for h in range(2):  # head h owns output column h (head_dim 1)
            rows = slice(h, h + 1)
            heads.append(causal_reference(
                batch, module.W_query.weight[rows].T, module.W_key.weight[rows].T,
                module.W_value.weight[rows].T,
            ))
        expected = torch.cat(heads, dim=-1) @ module.out_proj.weight.T + module.out_proj.bias
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(actual[0, 0], torch.tensor([0.3190, 0.4858]), atol=ATOL, rtol=0)


def test_gpt2_sized_multi_head_attention_parameter_count(ch03):
    module = ch03["MultiHeadAttention"](768, 768, 1024, 0.0, num_heads=12)
    assert sum(p.numel() for p in module.parameters()) == 2_360_064
    assert "mask" in module.state_dict()  # a persistent buffer, not a parameter


def test_rejects_d_out_not_divisible_by_heads(ch03):
    with pytest.raises(ValueError, match=r"d_out \(5\) must be divisible by num_heads \(2\)"):
        ch03["MultiHeadAttention"](3, 5, 6, 0.0, num_heads=2)


@pytest.mark.parametrize("name", ["MultiHeadAttention", "CausalAttention"])
def test_rejects_input_longer_than_context(ch03, name):
    extra = {"num_heads": 2} if name == "MultiHeadAttention" else {}
    module = ch03[name](3, 2, 6, 0.0, **extra)
    with pytest.raises(ValueError, match="7 tokens .* context_length=6"):
        module(torch.rand(1, 7, 3))
    assert module(torch.rand(1, 4, 3)).shape == (1, 4, 2)  # shorter inputs are fine


@pytest.mark.needs_mirror("the-verdict.txt")
def test_summary_notebook_shapes():
    summary = vars(notebook_definitions(CHAPTER / "multihead-attention.ipynb", whole_cells=True))
    assert summary["input_embeddings"].shape == (8, 4, 256)
    # variant A: the wrapper, two heads of d_in // 2; variant B: MultiHeadAttention
    assert summary["context_vecs_wrapper"].shape == (8, 4, 256)
    assert summary["context_vecs"].shape == (8, 4, 256)


def test_exercise_solutions():
    solutions = vars(notebook_definitions(CHAPTER / "exercise-solutions.ipynb", whole_cells=True))
    x = solutions["inputs"]
    with torch.no_grad():
        torch.testing.assert_close(solutions["sa_v1"](x), solutions["sa_v2"](x))
    assert solutions["context_vecs"].shape == (2, 6, 2)
    torch.testing.assert_close(solutions["context_vecs"][0, 0], torch.tensor([-0.5740, 0.2216]),
                               atol=ATOL, rtol=0)
    assert solutions["num_params"] == 2_360_064


def test_buffers_notebook_demonstrates_the_differences():
    ns = vars(notebook_definitions(
        "ch03/03_understanding-buffers/understanding-buffers.ipynb", whole_cells=True))
    assert "mask" in ns["ca_buffer"].state_dict()
    assert "mask" not in ns["ca_plain"].state_dict()
    assert "mask" not in ns["ca_nonpersistent"].state_dict()
    assert [name for name, _ in ns["ca_nonpersistent"].named_buffers()] == ["mask"]
    assert ns["ca_buffer_16"].mask.dtype == torch.float16
    assert ns["ca_plain_16"].mask.dtype == torch.float32
    # the copied CausalAttention is chapter 3's class: same seeded output
    torch.manual_seed(123)
    module = ns["CausalAttention"](3, 2, 6, 0.0)
    with torch.no_grad():
        out = module(torch.stack([ns["inputs"][0]] * 2))
    expected = causal_reference(torch.stack([ns["inputs"][0]] * 2), module.W_query.weight.T,
                                module.W_key.weight.T, module.W_value.weight.T)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)
