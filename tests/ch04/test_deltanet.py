"""ch04/08_deltanet: the gated delta rule (recurrent == chunked == Hugging Face's Qwen3-Next
torch fallback), the Gated DeltaNet layer, the hybrid GPT, the memory plot and the comparison."""

import pytest
import torch
from support.course_imports import import_course_module
from support.kv_variant_helpers import (TINY_SCRIPT_ARGS, assert_cached_equals_uncached,
                                assert_generation_report, random_ids, run_main, tiny_model)

deltanet = import_course_module("ch04/08_deltanet/gpt_with_kv_deltanet.py")
skeleton = import_course_module("ch04/08_deltanet/kv_gpt_skeleton.py")
plot = import_course_module("ch04/08_deltanet/plot_memory_estimates_gated_deltanet.py")
compare = import_course_module("ch04/08_deltanet/compare_kv_cache.py")


def rule_inputs(batch=2, tokens=37, heads=3, d_k=8, d_v=6, seed=0):
    """Random q, k, v, g, beta in the rule's shapes (float64)."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(batch, tokens, heads, d_k, generator=g, dtype=torch.float64)
            for _ in range(2))
    v = torch.randn(batch, tokens, heads, d_v, generator=g, dtype=torch.float64)
    log_decay = -torch.rand(batch, tokens, heads, generator=g, dtype=torch.float64)
    beta = torch.rand(batch, tokens, heads, generator=g, dtype=torch.float64)
    return q, k, v, log_decay, beta


@pytest.mark.parametrize("chunk_size", [1, 8, 10, 64])
def test_chunked_rule_equals_recurrent_rule(chunk_size):
    q, k, v, g, beta = rule_inputs()
    q, k = deltanet.l2norm(q) / 8**0.5, deltanet.l2norm(k)
    start = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    out, state = deltanet.gated_delta_rule_recurrent(q, k, v, g, beta, initial_state=start)
    out_c, state_c = deltanet.gated_delta_rule_chunked(q, k, v, g, beta, initial_state=start,
                                                       chunk_size=chunk_size)
    torch.testing.assert_close(out_c, out, rtol=0, atol=1e-10)
    torch.testing.assert_close(state_c, state, rtol=0, atol=1e-10)


def test_rule_equals_hugging_face_qwen3_next_torch_fallbacks():
    """transformers' Qwen3-Next reference (PyTorch) implementations, recurrent and chunked."""
    from transformers.models.qwen3_next import modeling_qwen3_next as qwen3_next

    q, k, v, g, beta = rule_inputs()
    out, state = deltanet.gated_delta_rule_recurrent(deltanet.l2norm(q) / 8**0.5,
                                                     deltanet.l2norm(k), v, g, beta)
    for hf_rule in (qwen3_next.torch_recurrent_gated_delta_rule,
                    qwen3_next.torch_chunk_gated_delta_rule):
        hf_out, hf_state = hf_rule(*(t.float() for t in (q, k, v, g, beta)),
                                   output_final_state=True, use_qk_l2norm_in_kernel=True)
        torch.testing.assert_close(hf_out.double(), out, rtol=0, atol=1e-5)
        torch.testing.assert_close(hf_state.double(), state, rtol=0, atol=1e-5)


def test_layer_equals_its_projections_around_hugging_face_rule_and_gated_norm():
    """The whole layer, rebuilt from its weights with Qwen3-Next's rule and gated RMSNorm."""
    from transformers.models.qwen3_next import modeling_qwen3_next as qwen3_next

    torch.manual_seed(0)
    layer = deltanet.GatedDeltaNet(32, 32, 0.0, num_heads=4).eval()
    x = torch.randn(2, 11, 32)
    heads = (2, 11, 4, 8)
    with torch.no_grad():
        q, k, v = (w(x).view(heads) for w in (layer.W_query, layer.W_key, layer.W_value))
        g = -layer.A_log.exp() * torch.nn.functional.softplus(layer.W_alpha(x) + layer.dt_bias)
        out, _ = qwen3_next.torch_recurrent_gated_delta_rule(
            q, k, v, g, torch.sigmoid(layer.W_beta(x)), use_qk_l2norm_in_kernel=True)
        norm = qwen3_next.Qwen3NextRMSNormGated(8, eps=1e-6)
        expected = layer.out_proj(norm(out, layer.W_gate(x).view(heads)).reshape(2, 11, 32))
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)


def test_hybrid_gpt_schedule_and_cache():
    model = tiny_model(deltanet.GPTModel, full_attention_interval=4)
    kinds = [type(block.att).__name__ for block in model.trf_blocks]
    assert kinds == ["GatedDeltaNet"] * 3 + ["GatedMultiHeadAttention"]
    assert_cached_equals_uncached(skeleton, model)


def test_deltanet_state_does_not_grow_with_the_context():
    model = tiny_model(deltanet.GPTModel, full_attention_interval=5)  # 4 layers: no attention
    sizes = []
    with torch.no_grad():
        for chunk in (random_ids(1, 3), random_ids(1, 20), random_ids(1, 1)):
            model(chunk, use_cache=True)
            sizes.append(skeleton.kv_cache_bytes(model))
    assert sizes == [4 * 4 * 8 * 8 * 8] * 3  # layers x heads x 8 x 8 x 8 bytes (float64)


def test_gated_attention_with_an_open_gate_is_attention():
    torch.manual_seed(0)
    gated = deltanet.GatedMultiHeadAttention(16, 16, 0.0, num_heads=2).double()
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    with torch.no_grad():
        gated.W_gate.weight.zero_()  # sigmoid(0) = 1/2 everywhere
        opened = gated.out_proj(gated.context_vectors(x) * 0.5)
        torch.testing.assert_close(gated(x), opened, rtol=0, atol=1e-12)


def test_plot_curves(tmp_path, capsys):
    contexts, curves = plot.memory_curves(1, 2048, 16, 48, "bf16", 128, 131072)
    assert contexts[0] == 128 and contexts[1] == 228
    mha, delta, hybrid = curves.values()
    assert mha[0] == 128 * 2048 * 2 * 2 * 48 / 1e9
    assert (delta == 16 * 128 * 128 * 2 * 48 / 1e9).all()  # constant
    assert hybrid[0] == (128 * 2048 * 2 * 2 * 12 + 16 * 128 * 128 * 2 * 36) / 1e9  # 3:1
    output = tmp_path / "plot.png"
    plot.main(plot.parse_args(["--max_ctx", "1000", "--output", str(output)]))
    assert output.stat().st_size > 10_000
    assert "Gated DeltaNet (all layers): 0.0252 GB" in capsys.readouterr().out


def test_comparison_measures_what_the_estimators_predict(capsys):
    rows = compare.main(compare.parse_args([
        "--context-length", "40", "--new-tokens", "3", "--prefill-chunk", "16",
        "--emb-dim", "16", "--n-heads", "4", "--n-layers", "4",
        "--sliding-window-size", "8", "--latent-dim", "4", "--device", "cpu"]))
    assert [r["variant"].split()[0] for r in rows] == ["MHA", "GQA", "MLA", "SWA", "DeltaNet"]
    assert all(r["measured"] == r["predicted"] for r in rows)
    assert rows[0]["measured"] == 40 * 16 * 2 * 4 * 4  # tokens x emb x (K, V) x 4 bytes x layers
    assert "| MHA | keys + values, all heads | 20,480 | 20,480 | yes |" in capsys.readouterr().out


def test_script_runs_offline_on_a_tiny_config(capsys):
    argv = TINY_SCRIPT_ARGS + ["--full_attention_interval", "2"]
    assert_generation_report(run_main(deltanet, argv, capsys))
