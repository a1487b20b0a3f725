"""The KV-cache GPT (ch04/03_kv-cache) computes exactly what the chapter's GPT computes.

Equality tests run in float64: cached and uncached forward passes add the same
numbers in a different order, and float64 keeps those rounding differences far
below any gap between the two most likely tokens.
"""

import pytest
import torch
from support.course_imports import import_course_module
from support.helpers import run_script_in_process

kv = import_course_module("ch04/03_kv-cache/gpt_with_kv_cache.py")
prev = import_course_module("ch04/03_kv-cache/previous_chapters.py")

SMALL_CONFIG = {
    "vocab_size": 97,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": True,
}
BOOK_IDS = [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267, 49706, 43231,
            47062, 34657]


@pytest.fixture(params=[False, True], ids=["chapter-ops", "fused-ops"])
def fused_ops(request):
    """Run a test with the chapter's operations and with PyTorch's fused ones."""
    return request.param


@pytest.fixture
def atol(fused_ops):
    """How far our float64 logits may be from the chapter model's.

    With the chapter's operations only the order of additions differs. The fused
    GELU differs a little more: the chapter's GELU computes its constant
    sqrt(2 / pi) from a float32 tensor, so it is rounded to float32 even in a
    float64 model (about 1e-8 relative), while F.gelu uses the exact constant.
    """
    return 1e-7 if fused_ops else 1e-12


@pytest.fixture
def small_models(fused_ops):
    """Returns a function(seed) -> the chapter's GPTModel and our GPTModel, same weights."""

    def build(seed=0):
        torch.manual_seed(seed)
        plain = prev.GPTModel(SMALL_CONFIG).double().eval()
        cached = kv.GPTModel(SMALL_CONFIG, fused_ops=fused_ops).double().eval()
        cached.load_state_dict(plain.state_dict())
        return plain, cached

    return build


def random_prompt(length, batch_size=1, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, SMALL_CONFIG["vocab_size"], (batch_size, length), generator=generator)


def test_same_seed_gives_the_same_weights_as_the_chapter_model(fused_ops):
    torch.manual_seed(123)
    plain = prev.GPTModel(SMALL_CONFIG)
    torch.manual_seed(123)
    cached = kv.GPTModel(SMALL_CONFIG, fused_ops=fused_ops)
    plain_state, cached_state = plain.state_dict(), cached.state_dict()
    assert list(plain_state) == list(cached_state)
    for name, tensor in plain_state.items():
        assert torch.equal(tensor, cached_state[name]), name


def test_forward_without_cache_equals_the_chapter_model(small_models, atol):
    plain, cached = small_models()
    idx = random_prompt(SMALL_CONFIG["context_length"], batch_size=3)
    torch.testing.assert_close(cached(idx), plain(idx), rtol=0, atol=atol)
    assert cached.cached_tokens() == 0


@pytest.mark.parametrize("chunks", [[16], [1] * 16, [5, 1, 3, 7], [2, 14]])
def test_feeding_chunks_through_the_cache_gives_the_full_sequence_logits(
    small_models, atol, chunks
):
    plain, cached = small_models()
    idx = random_prompt(sum(chunks), batch_size=2)
    expected = plain(idx)
    start = 0
    for size in chunks:
        logits = cached(idx[:, start:start + size], use_cache=True)
        torch.testing.assert_close(logits, expected[:, start:start + size], rtol=0, atol=atol)
        start += size
    assert cached.cached_tokens() == sum(chunks)


@pytest.mark.parametrize("prompt_length", [1, 4, 15, 16, 20])
@pytest.mark.parametrize("max_new_tokens", [1, 9, 30])
def test_cached_generation_equals_uncached_generation(
    small_models, prompt_length, max_new_tokens
):
    # Prompts of 16 and 20 tokens reach or exceed context_length=16, and 30 new
    # tokens push every prompt past it: the window has to slide.
    plain, cached = small_models()
    idx = random_prompt(prompt_length, batch_size=2, seed=prompt_length)
    context = SMALL_CONFIG["context_length"]
    expected = prev.generate_text_simple(plain, idx, max_new_tokens, context)
    actual = kv.generate_text_simple_cached(cached, idx, max_new_tokens, context)
    assert actual.tolist() == expected.tolist()


def test_a_smaller_context_size_than_the_model_supports_is_respected(small_models):
    plain, cached = small_models()
    idx = random_prompt(3)
    expected = prev.generate_text_simple(plain, idx, 12, context_size=6)
    actual = kv.generate_text_simple_cached(cached, idx, 12, context_size=6)
    assert actual.tolist() == expected.tolist()


def test_cache_is_reset_between_prompts(small_models):
    plain, cached = small_models()
    first, second = random_prompt(7, seed=2), random_prompt(5, seed=3)
    context = SMALL_CONFIG["context_length"]
    kv.generate_text_simple_cached(cached, first, 6, context)
    assert cached.cached_tokens() == 0
    after_first = kv.generate_text_simple_cached(cached, second, 6, context)
    assert after_first.tolist() == prev.generate_text_simple(plain, second, 6, context).tolist()


def test_reset_cache_forgets_earlier_tokens(small_models):
    _, cached = small_models()
    first, second = random_prompt(7, seed=2), random_prompt(5, seed=3)
    fresh = cached(second)
    cached(first, use_cache=True)
    continued = cached(second, use_cache=True)  # second is read as a continuation of first
    assert not torch.allclose(continued, fresh)
    cached.reset_kv_cache()
    assert cached.cached_tokens() == 0
    torch.testing.assert_close(cached(second, use_cache=True), fresh, rtol=0, atol=1e-12)


def test_cache_overflow_raises_a_clear_error(small_models):
    _, cached = small_models()
    context = SMALL_CONFIG["context_length"]
    cached(random_prompt(context), use_cache=True)
    with pytest.raises(kv.CacheFullError, match=f"exceed context_length={context}"):
        cached(random_prompt(1), use_cache=True)
    cached.reset_kv_cache()
    with pytest.raises(kv.CacheFullError, match="reset_kv_cache"):
        cached(random_prompt(context + 1), use_cache=True)


def test_cache_stays_out_of_the_state_dict(small_models):
    _, cached = small_models()
    keys_before = set(cached.state_dict())
    cached(random_prompt(4), use_cache=True)
    assert set(cached.state_dict()) == keys_before


def test_cached_generation_reproduces_the_book_output(fused_ops):
    torch.manual_seed(123)
    model = kv.GPTModel(prev.GPT_CONFIG_124M, fused_ops=fused_ops).eval()
    idx = torch.tensor([BOOK_IDS[:4]])  # "Hello, I am"
    out = kv.generate_text_simple_cached(model, idx, 10, prev.GPT_CONFIG_124M["context_length"])
    assert out.tolist() == [BOOK_IDS]


def random_hf_gpt2(seed=0):
    """A small Hugging Face GPT-2 with weights spread wide enough to vary the tokens.

    Hugging Face initialises with std 0.02, which makes tiny models repeat one
    token forever; a wider spread gives greedy decoding something to get wrong.
    """
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    hf_config = transformers.GPT2Config(
        vocab_size=SMALL_CONFIG["vocab_size"],
        n_positions=SMALL_CONFIG["context_length"],
        n_embd=SMALL_CONFIG["emb_dim"],
        n_head=SMALL_CONFIG["n_heads"],
        n_layer=SMALL_CONFIG["n_layers"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None,
    )
    hf_model = transformers.GPT2LMHeadModel(hf_config)
    with torch.no_grad():
        for parameter in hf_model.parameters():
            parameter.normal_(0.0, 0.3)
    return hf_model.double().eval()


@pytest.mark.parametrize("prompt_length", [1, 3, 8])
def test_cached_generation_equals_hugging_face_greedy(prompt_length, fused_ops):
    hf_model = random_hf_gpt2()
    ours = kv.GPTModel(prev.gpt_config_from_hf(hf_model.config),
                         fused_ops=fused_ops).double().eval()
    prev.load_hf_gpt2_weights(ours, hf_model.state_dict())
    idx = random_prompt(prompt_length, seed=10 + prompt_length)
    max_new_tokens = SMALL_CONFIG["context_length"] - prompt_length  # fill the context
    with torch.no_grad():
        expected = hf_model.generate(
            idx, attention_mask=torch.ones_like(idx), max_new_tokens=max_new_tokens,
            do_sample=False, use_cache=True, pad_token_id=0,
        )
    actual = kv.generate_text_simple_cached(ours, idx, max_new_tokens,
                                     SMALL_CONFIG["context_length"])
    assert actual.tolist() == expected.tolist()
    assert len(set(actual[0, prompt_length:].tolist())) > 1  # not one repeated token


def linear_weights(model):
    return [module.weight for module in model.modules() if isinstance(module, torch.nn.Linear)]


def is_column_major(weight):
    return weight.t().is_contiguous() and not weight.is_contiguous()


def test_column_major_weights_keep_names_shapes_and_values(small_models):
    _, cached = small_models()
    before = {name: tensor.clone() for name, tensor in cached.state_dict().items()}
    kv.store_weights_column_major(cached)
    after = cached.state_dict()
    assert list(after) == list(before)
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name
    weights = linear_weights(cached)
    assert len(weights) == 6 * SMALL_CONFIG["n_layers"] + 1  # 4 attention, 2 feed-forward, head
    assert all(is_column_major(weight) for weight in weights)


def test_column_major_weights_survive_load_state_dict_and_a_dtype_change(small_models):
    plain, _ = small_models()  # float64
    model = kv.store_weights_column_major(kv.GPTModel(SMALL_CONFIG, fused_ops=True))
    model.double()  # .to() keeps the strides of dense tensors (preserve_format)
    model.load_state_dict(plain.state_dict())  # copies into the column-major tensors
    assert all(is_column_major(weight) for weight in linear_weights(model))
    for name, tensor in plain.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_column_major_weights_give_the_same_logits_and_generation(small_models, atol):
    plain, cached = small_models()
    kv.store_weights_column_major(cached)
    idx = random_prompt(SMALL_CONFIG["context_length"], batch_size=3)
    torch.testing.assert_close(cached(idx), plain(idx), rtol=0, atol=atol)
    prompt, context = random_prompt(5), SMALL_CONFIG["context_length"]
    expected = prev.generate_text_simple(plain, prompt, 20, context)
    assert kv.generate_text_simple_cached(cached, prompt, 20, context).tolist() == expected.tolist()


def test_column_major_weights_reproduce_the_book_output():
    torch.manual_seed(123)
    model = kv.GPTModel(prev.GPT_CONFIG_124M, fused_ops=True).eval()
    kv.store_weights_column_major(model)
    idx = torch.tensor([BOOK_IDS[:4]])  # "Hello, I am"
    out = kv.generate_text_simple_cached(model, idx, 10, prev.GPT_CONFIG_124M["context_length"])
    assert out.tolist() == [BOOK_IDS]


@pytest.mark.slow
def test_benchmark_script_runs_a_small_model_and_reports_agreement(tmp_path):
    result = run_script_in_process(
        "ch04/03_kv-cache/benchmark.py",
        ["--emb-dim", "32", "--n-layers", "2", "--n-heads", "2", "--context-length", "32",
         "--max-new-tokens", "12", "--repeats", "1", "--device", "cpu"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "all 5 methods produced the same 16 token ids: True" in result.stdout
    for method in ("no cache", "KV cache", "fused ops", "column-major weights", "Hugging Face"):
        assert method in result.stdout
    assert "KV cache speed-up over no cache:" in result.stdout


def test_matvec_layouts_script_times_every_gpt2_shape(tmp_path):
    layouts = import_course_module("ch04/03_kv-cache/matvec_layouts.py")
    result = run_script_in_process("ch04/03_kv-cache/matvec_layouts.py",
                                   ["--repeats", "2", "--memory-mb", "1", "--device", "cpu"],
                                   tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.strip("| ").split(" | ") for line in result.stdout.splitlines()
            if line.startswith("| ") and "ms" not in line]  # table rows, not the header
    assert [row[0] for row in rows] == list(layouts.GPT2_124M_SHAPES)
    for _, row_major_ms, col_major_ms in rows:
        assert float(row_major_ms) > 0 and float(col_major_ms) > 0


def test_column_major_is_the_same_matrix_in_the_other_memory_order():
    """matvec_layouts.py times F.linear on both orders; they must hold the same matrix."""
    weight = torch.randn(5, 3)
    stored = kv.column_major(weight)
    assert torch.equal(stored, weight)
    assert stored.stride() == (1, 5)
