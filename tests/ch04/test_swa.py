"""ch04/06_swa: sliding-window attention, its layer schedule, the SWA estimator and plot."""

import pytest
import torch
from support.course_imports import import_course_module
from support.kv_variant_helpers import (TINY_CFG, TINY_SCRIPT_ARGS, assert_cached_equals_uncached,
                                assert_generation_report, random_ids, run_main, tiny_model)

swa = import_course_module("ch04/06_swa/gpt_with_kv_swa.py")
skeleton = import_course_module("ch04/06_swa/kv_gpt_skeleton.py")
estimator = import_course_module("ch04/06_swa/memory_estimator_swa.py")
plot = import_course_module("ch04/06_swa/plot_memory_estimates_swa.py")
chapter = import_course_module("ch04/03_kv-cache/previous_chapters.py")


def test_cached_prefill_equals_uncached_and_keeps_the_window():
    """The book repository's test, plus a second step that needs the trimmed cache."""
    torch.manual_seed(0)
    att = swa.MultiHeadAttentionWithSWA(8, 8, 0.0, num_heads=2, sliding_window_size=4).double()
    x = torch.randn(1, 7, 8, dtype=torch.float64)
    with torch.no_grad():
        whole = att(x)
        prefill = att(x[:, :6], use_cache=True)
        assert att.cache_k.size(1) == att.cache_v.size(1) == 4
        step = att(x[:, 6:], use_cache=True)
        assert att.cache_k.size(1) == 4
    torch.testing.assert_close(torch.cat([prefill, step], dim=1), whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("stride", [2, -1])
def test_cached_generation_equals_uncached_beyond_the_window(stride):
    model = tiny_model(swa.GPTModel, sliding_window_size=5, sliding_window_stride=stride)
    assert_cached_equals_uncached(skeleton, model)


def test_window_as_long_as_the_context_is_chapter_4s_model():
    torch.manual_seed(123)
    reference = chapter.GPTModel(TINY_CFG).double().eval()
    model = swa.GPTModel({**TINY_CFG, "sliding_window_size": TINY_CFG["context_length"],
                          "sliding_window_stride": -1}).double().eval()
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith(".att.mask")}
    assert not model.load_state_dict(state, strict=True).missing_keys
    ids = random_ids(2, TINY_CFG["context_length"])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), reference(ids), rtol=0, atol=1e-10)
    prompt = ids[:, :6]
    assert torch.equal(skeleton.generate_text_simple_cached(model, prompt, 8),
                       chapter.generate_text_simple(reference, prompt, 8, 40))


def test_layer_schedule():
    def schedule(stride, n_layers=6):
        model = swa.GPTModel({**TINY_CFG, "n_layers": n_layers, "sliding_window_size": 3,
                              "sliding_window_stride": stride})
        return ["S" if b.att.sliding_window_size == 3 else "F" for b in model.trf_blocks]

    assert schedule(2) == list("SSFSSF")
    assert schedule(5, n_layers=8) == list("SSSSSFSS")
    assert schedule(0) == list("FFFFFF")
    assert schedule(-1) == list("SSSSSS")
    assert schedule(1) == list("SFSFSF")


def test_sliding_window_mask_equals_hugging_face_mistral():
    """Mistral's eager attention with its own sliding-window mask (RoPE off) equals ours."""
    from transformers import MistralConfig
    from transformers.masking_utils import create_sliding_window_causal_mask
    from transformers.models.mistral.modeling_mistral import MistralAttention

    window, tokens = 3, 8
    config = MistralConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                           head_dim=8, sliding_window=window, attention_dropout=0.0)
    config._attn_implementation = "eager"
    hf = MistralAttention(config, layer_idx=0).double().eval()
    torch.manual_seed(0)
    ours = swa.MultiHeadAttentionWithSWA(32, 32, 0.0, num_heads=4,
                                         sliding_window_size=window).double().eval()
    x = torch.randn(1, tokens, 32, dtype=torch.float64)
    with torch.no_grad():
        for our_name, hf_name in (("W_query", "q_proj"), ("W_key", "k_proj"),
                                  ("W_value", "v_proj"), ("out_proj", "o_proj")):
            getattr(hf, hf_name).weight.copy_(getattr(ours, our_name).weight)
        ours.out_proj.bias.zero_()
        mask = create_sliding_window_causal_mask(
            config=config, inputs_embeds=x, attention_mask=None, cache=None,
            position_ids=torch.arange(tokens)[None])
        # Same edge: each query sees itself and the window - 1 tokens before it.
        hidden = skeleton.hidden_mask(0, tokens, 0, tokens, window)
        assert torch.equal(mask[0, 0] != 0 if mask.dtype != torch.bool else ~mask[0, 0], hidden)
        no_rope = (torch.ones(1, tokens, 8, dtype=torch.float64),
                   torch.zeros(1, tokens, 8, dtype=torch.float64))
        expected = hf(x, position_embeddings=no_rope, attention_mask=mask)[0]
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-6)


def test_estimator_reproduces_the_book_figures(capsys):
    estimator.main(estimator.parse_args([
        "--emb_dim", "4096", "--n_heads", "32", "--n_layers", "32",
        "--context_length", "32768", "--n_kv_groups", "4",
        "--sliding_window_size", "1024", "--swa_ratio", "5:1", "--dtype", "bf16"]))
    out = capsys.readouterr().out
    assert "27 SWA + 5 FULL" in out
    assert "MHA, all FULL: 17.18 GB" in out and "GQA, all FULL: 4.29 GB" in out
    assert "MHA + SWA (ratio 5:1): 3.14 GB" in out
    assert "GQA + SWA (ratio 5:1): 0.78 GB" in out  # the book labels it "MHA + GQA"


def test_layer_counts_match_the_model_schedule():
    for n_layers in range(1, 13):
        for stride in (1, 2, 3, 5):
            model_swa = sum(swa.is_sliding_window_layer(i, stride) for i in range(n_layers))
            assert estimator.distribute_layers(n_layers, stride, 1) == (
                model_swa, n_layers - model_swa)


@pytest.mark.parametrize("ratio", ["5", "a:b", "-1:2", "0:0", "1:2:3"])
def test_parse_ratio_rejects_nonsense(ratio):
    with pytest.raises(ValueError):
        estimator.parse_ratio(ratio)


def test_plot_writes_the_figure(tmp_path, capsys):
    output = tmp_path / "kv.png"
    plot.main(plot.parse_args(["--emb_dim", "4096", "--n_heads", "48", "--n_layers", "36",
                               "--sliding_window_size", "2048", "--output", str(output)]))
    assert output.stat().st_size > 10_000
    out = capsys.readouterr().out
    totals = estimator.estimate_totals(131072, 2048, 4096, 48, 36, 4, 1, "bf16", "5:1")
    assert f"GQA + SWA: {totals['total_mixed_gqa'] / 1e9:.2f} GB at 131,072 tokens" in out


def test_script_runs_offline_on_a_tiny_config(capsys):
    argv = TINY_SCRIPT_ARGS + ["--sliding_window_size", "3", "--sliding_window_stride", "1"]
    assert_generation_report(run_main(swa, argv, capsys))
