"""ch04/05_mla: multi-head latent attention, its cache, the MLA memory estimator and plot."""

import torch
from support.course_imports import import_course_module
from support.kv_variant_helpers import (TINY_SCRIPT_ARGS, assert_cached_equals_uncached,
                                assert_generation_report, random_ids, run_main, tiny_model)

mla = import_course_module("ch04/05_mla/gpt_with_kv_mla.py")
mha = import_course_module("ch04/05_mla/gpt_with_kv_mha.py")
skeleton = import_course_module("ch04/05_mla/kv_gpt_skeleton.py")
estimator = import_course_module("ch04/05_mla/memory_estimator_mla.py")
plot = import_course_module("ch04/05_mla/plot_memory_estimates_mla.py")


def test_cached_generation_equals_uncached():
    assert_cached_equals_uncached(skeleton, tiny_model(mla.GPTModel, latent_dim=8))


def test_cache_holds_only_the_latent():
    model = tiny_model(mla.GPTModel, latent_dim=8)
    with torch.no_grad():
        model(random_ids(1, 10), use_cache=True)
    assert model.trf_blocks[0].att.cache_c_kv.shape == (1, 10, 8)
    assert skeleton.kv_cache_bytes(model) == 4 * 10 * 8 * 8  # layers x tokens x latent x 8 bytes
    assert skeleton.kv_cache_bytes(model) == estimator.calc_mla_bytes_total(1, 10, 4, 8, 8)


def test_default_latent_dim():
    assert mla.MultiHeadLatentAttention(64, 64, 0.0, 4).latent_dim == 16  # max(16, 64 // 8)
    assert mla.MultiHeadLatentAttention(256, 256, 0.0, 4).latent_dim == 32


def test_mla_is_mha_with_low_rank_key_and_value_matrices():
    """Keys W_UK(W_DKV x): MHA whose key (value) matrix is the product W_UK @ W_DKV."""
    torch.manual_seed(0)
    latent = mla.MultiHeadLatentAttention(32, 32, 0.0, num_heads=4, latent_dim=8).double()
    plain = mha.MultiHeadAttention(32, 32, 0.0, num_heads=4).double()
    with torch.no_grad():
        plain.W_query.weight.copy_(latent.W_query.weight)
        plain.W_key.weight.copy_(latent.W_UK.weight @ latent.W_DKV.weight)
        plain.W_value.weight.copy_(latent.W_UV.weight @ latent.W_DKV.weight)
        plain.out_proj.load_state_dict(latent.out_proj.state_dict())
        x = torch.randn(2, 7, 32, dtype=torch.float64)
        torch.testing.assert_close(latent(x), plain(x), rtol=0, atol=1e-12)
        assert torch.linalg.matrix_rank(plain.W_key.weight) == 8


def test_estimator_reproduces_the_book_figures(capsys):
    estimator.main(estimator.parse_args([
        "--context_length", "8192", "--emb_dim", "2048", "--n_heads", "24",
        "--n_layers", "48", "--n_kv_groups", "4", "--latent_dim", "1024", "--dtype", "bf16"]))
    out = capsys.readouterr().out
    assert "head_dim 86" in out and "GQA: 6 key/value heads" in out
    assert "MHA KV cache: 3.25 GB" in out and "GQA KV cache: 0.81 GB" in out
    assert "MLA latent cache: 0.81 GB" in out
    assert "MHA / GQA: 4.00x (GQA saves 75.00%)" in out
    assert "MHA / MLA: 4.03x (MLA saves 75.19%)" in out


def test_plot_writes_the_figure(tmp_path, capsys):
    curves = plot.mla_curves()
    assert list(curves)[1:] == [f"MLA, latent_dim {d}" for d in (1024, 512, 256, 64)]
    assert curves["MLA, latent_dim 64"][-1] == 131072 * 48 * 64 * 2 / 1e9
    output = tmp_path / "kv.png"
    plot.main(plot.parse_args(["--output", str(output)]))
    assert output.stat().st_size > 10_000
    assert "MLA, latent_dim 1024: 12.88 GB" in capsys.readouterr().out


def test_script_runs_offline_on_a_tiny_config(capsys):
    assert_generation_report(run_main(mla, TINY_SCRIPT_ARGS + ["--latent_dim", "8"], capsys))
