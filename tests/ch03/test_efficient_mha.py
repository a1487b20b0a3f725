"""Every attention implementation in the bonus folder computes the same function.

The reference is written here, independently of the implementations: take the
query/key/value and output projection weights out of a module, project the
input with `F.linear`, and call `F.scaled_dot_product_attention(...,
is_causal=True)` in float64. Tolerance: atol 1e-5 and rtol 1e-4 on float32
outputs (the implementations differ only in float32 rounding order).
"""

import functools

import pytest
import torch
import torch.nn.functional as F
from support.course_imports import import_course_module

mha = import_course_module(
    "ch03/02_bonus_efficient-multihead-attention/mha_implementations.py"
)

ATOL, RTOL = 1e-5, 1e-4

# (batch, tokens, d_in, d_out, num_heads, context_length, qkv_bias)
SHAPES = [
    pytest.param(2, 6, 16, 16, 4, 6, False, id="full-context"),
    pytest.param(2, 5, 16, 16, 4, 9, False, id="shorter-than-context"),
    pytest.param(1, 7, 12, 12, 1, 8, False, id="batch1-one-head"),
    pytest.param(3, 4, 8, 12, 3, 10, False, id="d_in-differs-from-d_out"),
    pytest.param(2, 3, 24, 24, 6, 5, True, id="six-heads-qkv-bias"),
]


def projection_weights(module):
    """(Wq, bq, Wk, bk, Wv, bv, Wo, bo) in nn.Linear layout, from any implementation.

    Written per class from how each one stores its weights; Wo/bo are None
    where there is no output projection (the chapter's wrapper) or no bias.
    """
    if isinstance(module, mha.MHAChapterWrapper):
        def stacked(name):
            layers = [getattr(head, name) for head in module.heads]
            weight = torch.cat([layer.weight for layer in layers])
            bias = None if layers[0].bias is None else torch.cat([la.bias for la in layers])
            return weight, bias
        return (*stacked("W_query"), *stacked("W_key"), *stacked("W_value"), None, None)
    if isinstance(module, mha.MultiHeadAttention):
        linears = [module.W_query, module.W_key, module.W_value, module.out_proj]
        return tuple(t for layer in linears for t in (layer.weight, layer.bias))
    if isinstance(module, mha.MHAFusedQKVBase):
        weights = module.qkv.weight.chunk(3)
        biases = (None,) * 3 if module.qkv.bias is None else module.qkv.bias.chunk(3)
        out = module.out_proj
        return (*_interleave(weights, biases), out.weight, out.bias)
    if isinstance(module, mha.MHAEinsum):  # stores (d_in, d_out), as the book does
        weights = (module.W_query.T, module.W_key.T, module.W_value.T)
        biases = (module.b_query, module.b_key, module.b_value)
        out = module.out_proj
        return (*_interleave(weights, biases), out.weight, out.bias)
    if isinstance(module, mha.MHAPyTorchClass):
        att = module.attention
        weights = att.in_proj_weight.chunk(3)
        biases = (None,) * 3 if att.in_proj_bias is None else att.in_proj_bias.chunk(3)
        return (*_interleave(weights, biases), att.out_proj.weight, att.out_proj.bias)
    raise TypeError(f"no weight extraction for {type(module).__name__}")


def _interleave(weights, biases):
    return tuple(t for pair in zip(weights, biases, strict=True) for t in pair)


def reference_attention(x, weights, num_heads):
    """Causal multi-head attention via F.scaled_dot_product_attention, in float64."""
    wq, bq, wk, bk, wv, bv, wo, bo = (None if w is None else w.detach().double()
                                      for w in weights)
    x = x.double()
    batch_size, num_tokens, _ = x.shape
    d_out = wq.shape[0]

    def heads(w, b):
        projected = F.linear(x, w, b)
        return projected.view(batch_size, num_tokens, num_heads, -1).transpose(1, 2)

    context = F.scaled_dot_product_attention(
        heads(wq, bq), heads(wk, bk), heads(wv, bv), is_causal=True
    )
    context = context.transpose(1, 2).reshape(batch_size, num_tokens, d_out)
    return context if wo is None else F.linear(context, wo, bo)


def needs_square(cls):
    return issubclass(cls, mha.MHAPyTorchClass)


# The implementations that run on any CPU with the torch in requirements.txt (every
# one the folder has today). One of them raising on a CPU is a bug, so it fails
# here; only an implementation missing from this list (a GPU-only kernel) may be
# skipped when `unavailable_reason` says it cannot run.
MUST_RUN_ON_CPU = (
    "Ch03 MultiHeadAttentionWrapper",
    "Ch03 MultiHeadAttention",
    "Fused QKV",
    "Einsum",
    "SDPA (PyTorch picks kernel)",
    "SDPA flash kernel",
    "SDPA math kernel (no flash)",
    "nn.MultiheadAttention",
    "nn.MultiheadAttention, no weights",
    "FlexAttention",
)


@functools.cache
def cpu_unavailable_reason(cls):
    return mha.unavailable_reason(cls, "cpu")


@pytest.fixture(params=list(mha.IMPLEMENTATIONS.items()), ids=list(mha.IMPLEMENTATIONS))
def implementation(request):
    name, cls = request.param
    if name not in MUST_RUN_ON_CPU:
        reason = cpu_unavailable_reason(cls)
        if reason is not None:
            pytest.skip(f"{name} does not run here: {reason}")
    return cls


def test_must_run_on_cpu_lists_existing_implementations():
    assert set(MUST_RUN_ON_CPU) <= set(mha.IMPLEMENTATIONS)


@pytest.mark.parametrize("name", MUST_RUN_ON_CPU)
def test_runs_on_cpu(name):
    """A forward pass on the CPU works: an error here is a bug, not "unavailable"."""
    assert cpu_unavailable_reason(mha.IMPLEMENTATIONS[name]) is None


def test_there_are_at_least_eight_implementations():
    assert len(mha.IMPLEMENTATIONS) >= 8
    assert len(set(mha.IMPLEMENTATIONS.values())) == len(mha.IMPLEMENTATIONS)


@pytest.mark.parametrize("batch,tokens,d_in,d_out,num_heads,context_length,qkv_bias", SHAPES)
def test_matches_sdpa_reference(implementation, batch, tokens, d_in, d_out, num_heads,
                                context_length, qkv_bias):
    torch.manual_seed(0)
    if needs_square(implementation) and d_in != d_out:
        with pytest.raises(ValueError, match="d_in == d_out"):
            implementation(d_in, d_out, context_length, 0.0, num_heads, qkv_bias)
        return
    module = implementation(d_in, d_out, context_length, 0.0, num_heads, qkv_bias).eval()
    x = torch.randn(batch, tokens, d_in)

    with torch.no_grad():
        actual = module(x)
    expected = reference_attention(x, projection_weights(module), num_heads)

    assert actual.shape == (batch, tokens, d_out)
    torch.testing.assert_close(actual, expected.float(), atol=ATOL, rtol=RTOL)


def test_eval_mode_switches_dropout_off(implementation):
    """With dropout 0.5, eval() must give the deterministic reference output."""
    torch.manual_seed(1)
    module = implementation(16, 16, 8, 0.5, 4).eval()
    x = torch.randn(2, 8, 16)
    with torch.no_grad():
        actual = module(x)
    expected = reference_attention(x, projection_weights(module), 4)
    torch.testing.assert_close(actual, expected.float(), atol=ATOL, rtol=RTOL)


def test_training_mode_applies_dropout(implementation):
    torch.manual_seed(2)
    module = implementation(16, 16, 8, 0.5, 4).train()
    x = torch.randn(2, 8, 16)
    if implementation is mha.MHAPyTorchFlexAttention:
        with pytest.raises(RuntimeError, match="no attention dropout"):
            module(x)
        return
    with torch.no_grad():
        try:
            trained = module(x)
        except RuntimeError as err:
            # PyTorch's CPU flash kernel has no dropout (CUDA's has): say so, don't hide it;
            # any other error of that kernel fails
            if (implementation is mha.MHAPyTorchSDPAFlashOnly
                    and "No available kernel" in str(err)):
                pytest.skip(f"this platform's flash kernel has no dropout: {err}")
            raise
        evaluated = module.eval()(x)
    assert not torch.allclose(trained, evaluated)


def test_gradients_match_reference(implementation):
    """Backward passes agree too (the benchmark times forward + backward)."""
    torch.manual_seed(3)
    module = implementation(16, 16, 6, 0.0, 4)
    x = torch.randn(2, 6, 16, requires_grad=True)
    try:
        module(x).square().sum().backward()
    except NotImplementedError as err:
        if implementation is mha.MHAPyTorchFlexAttention and "backward on CPU" in str(err):
            pytest.skip(f"FlexAttention: {err}")
        raise

    x_ref = x.detach().clone().requires_grad_(True)
    reference_attention(x_ref, projection_weights(module), 4).square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad.float(), atol=1e-4, rtol=1e-4)


def test_rejects_bad_head_split(implementation):
    with pytest.raises(ValueError, match="divisible by num_heads"):
        implementation(12, 12, 8, 0.0, 5)


def test_rejects_too_long_input(implementation):
    module = implementation(8, 8, 4, 0.0, 2)
    with pytest.raises(ValueError, match="context_length=4"):
        module(torch.randn(1, 5, 8))


def test_parameter_counts_match_chapter_class():
    """Same sizes, same number of trainable weights (where the layouts allow it)."""
    d = 64

    def count(cls):
        return sum(p.numel() for p in cls(d, d, 16, 0.0, 4).parameters())

    chapter = count(mha.MultiHeadAttention)
    assert chapter == 4 * d * d + d  # q, k, v, out projections + output bias
    for name, cls in mha.IMPLEMENTATIONS.items():
        if needs_square(cls):  # one bias flag for in- and output projection
            assert count(cls) == chapter - d, name
        elif cls is mha.MHAChapterWrapper:  # no output projection
            assert count(cls) == 3 * d * d, name
        else:
            assert count(cls) == chapter, name
