"""ch04/04_gqa: the shared KV-cache skeleton, MHA and GQA, the GQA memory estimator and plot."""

import pytest
import torch
from support.course_imports import import_course_module
from support.kv_variant_helpers import (TINY_CFG, TINY_SCRIPT_ARGS, assert_cached_equals_uncached,
                                assert_generation_report, random_ids, run_main, tiny_model)

mha = import_course_module("ch04/04_gqa/gpt_with_kv_mha.py")
gqa = import_course_module("ch04/04_gqa/gpt_with_kv_gqa.py")
skeleton = import_course_module("ch04/04_gqa/kv_gpt_skeleton.py")
estimator = import_course_module("ch04/04_gqa/memory_estimator_gqa.py")
plot = import_course_module("ch04/04_gqa/plot_memory_estimates_gqa.py")
chapter = import_course_module("ch04/03_kv-cache/previous_chapters.py")


def test_mha_gpt_has_chapter_4_weights_and_logits():
    """Same seed -> same weights as chapter 4's GPTModel (and the same state-dict names)."""
    torch.manual_seed(123)
    reference = chapter.GPTModel(TINY_CFG).double().eval()
    model = tiny_model(mha.GPTModel, seed=123)
    ours = model.state_dict()
    theirs = {k: v for k, v in reference.state_dict().items() if not k.endswith(".att.mask")}
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    ids = random_ids(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference(ids), rtol=0, atol=1e-10)


@pytest.mark.parametrize("model_class, extra", [
    (mha.GPTModel, {}),
    (gqa.GPTModel, {"n_kv_groups": 2}),
    (gqa.GPTModel, {"n_kv_groups": 1}),
])
def test_cached_generation_equals_uncached(model_class, extra):
    assert_cached_equals_uncached(skeleton, tiny_model(model_class, **extra))


def test_gqa_cache_holds_only_the_key_value_heads():
    model = tiny_model(gqa.GPTModel, n_kv_groups=2)
    with torch.no_grad():
        model(random_ids(1, 10), use_cache=True)
    att = model.trf_blocks[0].att
    assert att.cache_k.shape == (1, 10, 2, 8)  # (batch, tokens, KV heads, head_dim)
    # 4 layers x keys and values x 10 tokens x 2 heads x 8 dims x 8 bytes (float64)
    assert skeleton.kv_cache_bytes(model) == 4 * 2 * 10 * 2 * 8 * 8


def test_gqa_with_one_group_per_head_is_mha():
    torch.manual_seed(0)
    grouped = gqa.GroupedQueryAttention(32, 32, 0.0, num_heads=4, num_kv_groups=4).double()
    plain = mha.MultiHeadAttention(32, 32, 0.0, num_heads=4).double()
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value", "out_proj"):
            getattr(plain, name).weight.copy_(getattr(grouped, name).weight)
        plain.out_proj.bias.zero_()  # the book's GQA out_proj has no bias
        x = torch.randn(2, 7, 32, dtype=torch.float64)
        torch.testing.assert_close(grouped(x), plain(x), rtol=0, atol=1e-12)


def test_gqa_equals_hugging_face_llama_attention_without_rope():
    """LlamaAttention (eager) with our weights; RoPE switched off by cos = 1, sin = 0."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention

    config = LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=8, attention_bias=False, attention_dropout=0.0)
    config._attn_implementation = "eager"
    hf = LlamaAttention(config, layer_idx=0).double().eval()
    torch.manual_seed(0)
    ours = gqa.GroupedQueryAttention(32, 32, 0.0, num_heads=4, num_kv_groups=2).double().eval()
    with torch.no_grad():
        for our_name, hf_name in (("W_query", "q_proj"), ("W_key", "k_proj"),
                                  ("W_value", "v_proj"), ("out_proj", "o_proj")):
            getattr(hf, hf_name).weight.copy_(getattr(ours, our_name).weight)
        x = torch.randn(2, 9, 32, dtype=torch.float64)
        no_rope = (torch.ones(2, 9, 8, dtype=torch.float64),
                   torch.zeros(2, 9, 8, dtype=torch.float64))
        causal = torch.full((9, 9), torch.finfo(torch.float64).min, dtype=torch.float64).triu(1)
        expected = hf(x, position_embeddings=no_rope, attention_mask=causal[None, None])[0]
        # Hugging Face's eager softmax runs in float32; a wrong head grouping is off by ~0.1.
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-6)


def test_estimator_reproduces_the_book_figures(capsys):
    estimator.main(estimator.parse_args([
        "--emb_dim", "4096", "--n_heads", "32", "--n_layers", "32",
        "--context_length", "32768", "--n_kv_groups", "4", "--dtype", "bf16"]))
    out = capsys.readouterr().out
    assert "head_dim 128" in out and "8 key/value heads" in out
    assert "MHA KV cache: 17.18 GB" in out and "GQA KV cache: 4.29 GB" in out
    assert "4.00x" in out and "75.00%" in out
    # The exact bytes: 32768 tokens x 128 dims x 32 heads x 2 (K, V) x 2 bytes x 32 layers.
    totals = estimator.gqa_estimates(32768, 4096, 32, 32, 4, 1, "bf16")
    assert totals["total_mha"] == 32768 * 128 * 32 * 2 * 2 * 32 == 4 * totals["total_gqa"]


def test_plot_writes_the_figure_of_the_estimator_values(tmp_path, capsys):
    curves = plot.gqa_curves()
    assert len(curves) == 1 + len(plot.GROUP_SIZES)
    mha_curve = next(iter(curves.values()))
    expected = [estimator.calc_kv_bytes_total(1, n, 2048, 24, 24, 48, 2) / 1e9
                for n in plot.CONTEXT_LENGTHS]
    assert mha_curve == expected and plot.CONTEXT_LENGTHS[-1] == 131072
    output = tmp_path / "kv.png"
    plot.main(plot.parse_args(["--output", str(output)]))
    assert output.stat().st_size > 10_000
    assert "GQA, 4 query heads per KV head (6 KV heads): 12.99 GB" in capsys.readouterr().out


@pytest.mark.parametrize("module, extra", [(mha, []), (gqa, ["--n_kv_groups", "2"])])
def test_scripts_run_offline_on_a_tiny_config(module, extra, capsys):
    assert_generation_report(run_main(module, TINY_SCRIPT_ARGS + extra, capsys))
