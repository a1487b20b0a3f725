"""ch04/07_moe: the SwiGLU feed-forward layer, the MoE layer (vs Hugging Face's Qwen3-MoE block),
expert load, the parameter estimator and its plot."""

import torch
from support.course_imports import import_course_module
from support.kv_variant_helpers import (TINY_SCRIPT_ARGS, assert_cached_equals_uncached,
                                assert_generation_report, run_main, tiny_model)

moe = import_course_module("ch04/07_moe/gpt_with_kv_moe.py")
ffn = import_course_module("ch04/07_moe/gpt_with_kv_ffn.py")
skeleton = import_course_module("ch04/07_moe/kv_gpt_skeleton.py")
estimator = import_course_module("ch04/07_moe/memory_estimator_moe.py")
plot = import_course_module("ch04/07_moe/plot_memory_estimates_moe.py")

MOE_CFG = {"emb_dim": 16, "hidden_dim": 8, "num_experts": 6, "num_experts_per_tok": 2}


def test_one_expert_top_1_is_the_dense_swiglu_layer():
    torch.manual_seed(0)
    layer = moe.MoEFeedForward({**MOE_CFG, "num_experts": 1, "num_experts_per_tok": 1}).double()
    dense = ffn.FeedForward(MOE_CFG).double()
    with torch.no_grad():
        for name in ("fc1", "fc2", "fc3"):
            getattr(dense, name).weight.copy_(getattr(layer, name)[0].weight)
        x = torch.randn(2, 5, 16, dtype=torch.float64)
        torch.testing.assert_close(layer(x), dense(x), rtol=0, atol=1e-12)


def test_moe_block_equals_hugging_face_qwen3_moe_with_routing_and_load():
    """Qwen3MoeSparseMoeBlock (softmax over all experts, top-k, renormalized) with our weights."""
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    config = Qwen3MoeConfig(hidden_size=16, moe_intermediate_size=8, num_experts=6,
                            num_experts_per_tok=2, norm_topk_prob=True, hidden_act="silu")
    hf = Qwen3MoeSparseMoeBlock(config).double().eval()
    torch.manual_seed(0)
    ours = moe.MoEFeedForward(MOE_CFG).double().eval()
    with torch.no_grad():
        hf.gate.weight.copy_(ours.gate.weight)
        for e in range(6):
            hf.experts.gate_up_proj[e].copy_(torch.cat([ours.fc1[e].weight, ours.fc2[e].weight]))
            hf.experts.down_proj[e].copy_(ours.fc3[e].weight)
        x = torch.randn(3, 7, 16, dtype=torch.float64)
        # HF's router softmax runs in float32; wrong routing weights are off by ~0.1.
        torch.testing.assert_close(ours(x), hf(x), rtol=0, atol=1e-6)
        _, _, chosen = hf.gate(x.reshape(-1, 16))
    # The load: every token counted once for each of its top-2 experts, as HF routed them.
    assert torch.equal(ours.tokens_per_expert, torch.bincount(chosen.flatten(), minlength=6))
    assert ours.tokens_per_expert.sum() == 3 * 7 * 2
    ours.reset_load()
    assert ours.tokens_per_expert.sum() == 0


def test_cached_generation_equals_uncached():
    model = tiny_model(moe.GPTModel, hidden_dim=16, num_experts=4, num_experts_per_tok=2)
    assert_cached_equals_uncached(skeleton, model)
    load = moe.expert_load(model)
    assert len(load) == 4 and sum(load) > 0


def test_zero_experts_give_the_dense_swiglu_layer():
    """The fixed fallback: SwiGLU like the experts (the book's script falls back to GELU)."""
    model = tiny_model(moe.GPTModel, hidden_dim=16, num_experts=0, num_experts_per_tok=0)
    # moe imports gpt_with_kv_ffn's SwiGLU FeedForward (its own module instance here).
    assert moe.FeedForward.__module__ == "gpt_with_kv_ffn"
    assert all(type(block.ff) is moe.FeedForward for block in model.trf_blocks)
    assert moe.expert_load(model) is None
    assert_cached_equals_uncached(skeleton, tiny_model(ffn.GPTModel, hidden_dim=16))


def test_estimator_reproduces_the_book_figures(capsys):
    estimator.main(estimator.parse_args([
        "--emb_dim", "7168", "--hidden_dim", "14336", "--ffn_type", "swiglu",
        "--num_experts", "8", "--top_k", "2", "--match_dense"]))
    out = capsys.readouterr().out
    for figure in ("308,281,344 parameters (0.62 GB)", "38,535,168 parameters (0.08 GB)",
                   "57,344 parameters", "308,338,688 parameters (0.62 GB)",
                   "77,127,680 parameters (0.15 GB)", "Expert hidden size: 1792"):
        assert figure in out


def test_estimator_counts_the_parameters_of_the_real_layer():
    """The estimate equals the parameters of our MoE layer (experts + router, no biases)."""
    cfg = {**MOE_CFG, "num_experts_per_tok": 2}
    layer = moe.MoEFeedForward(cfg)
    est = estimator.estimate_params_and_hidden(16, 8, "swiglu", 6)
    assert est["moe_total"] == sum(p.numel() for p in layer.parameters())
    assert est["dense_params"] == sum(p.numel() for p in ffn.FeedForward(cfg).parameters())


def test_plot_writes_the_figure(tmp_path, capsys):
    output = tmp_path / "moe.png"
    plot.main(plot.parse_args(["--emb_dim", "7168", "--hidden_dim", "14336", "--top_k", "2",
                               "--max_experts", "64", "--save", str(output)]))
    assert output.stat().st_size > 10_000
    assert "   8 experts:     77,127,680 active,      308,338,688 total" in capsys.readouterr().out
    counts, active, total = plot.expert_curve(7168, 28672, "swiglu", 8, 512, True)
    assert counts[0] == 8 and counts[-1] == 512
    assert active[0] == total[0] and active[-1] < total[-1]  # 8 of 8 experts: all active


def test_scripts_run_offline_on_a_tiny_config(capsys):
    out = run_main(moe, TINY_SCRIPT_ARGS + ["--hidden_dim", "16", "--num_experts", "4"], capsys)
    assert_generation_report(out)
    assert "Avg MoE FF time/call: " in out and "Tokens per expert (all layers): 0: " in out
    out = run_main(ffn, TINY_SCRIPT_ARGS + ["--hidden_dim", "16", "--no_kv_cache"], capsys)
    assert_generation_report(out)
    assert "Avg FFN time/call: " in out
