"""FLOP counting, peak lookup and throughput measurement in ch04/02_performance-analysis."""

import pytest
import torch
from support.course_imports import import_course_module
from support.helpers import run_script, tiny_gpt_config

perf = import_course_module("ch04/02_performance-analysis/performance.py")

TINY_CONFIG = tiny_gpt_config(vocab_size=101, context_length=32, n_layers=3, drop_rate=0.1,
                              qkv_bias=True)


@pytest.mark.parametrize("batch_size, seq_len", [(1, 1), (1, 32), (3, 7)])
def test_counted_forward_flops_equal_the_analytic_formula(batch_size, seq_len):
    model = perf.meta_model(TINY_CONFIG)
    counted = perf.count_flops(model, batch_size, seq_len)
    # 2NT + 4LT^2d written out for the tiny model, independently of the module
    d, layers, vocab = 32, 3, 101
    expected = (2 * (12 * layers * d * d + d * vocab) * batch_size * seq_len
                + 4 * layers * batch_size * seq_len**2 * d)
    assert counted == expected
    assert perf.analytic_forward_flops(TINY_CONFIG, batch_size, seq_len) == expected


def test_meta_model_counts_the_same_flops_as_a_real_model():
    torch.manual_seed(0)
    real = perf.GPTModel(TINY_CONFIG)
    assert perf.count_flops(real, 2, 9) == perf.count_flops(perf.meta_model(TINY_CONFIG), 2, 9)


def test_training_costs_three_forward_passes():
    model = perf.meta_model(TINY_CONFIG)
    assert perf.count_flops(model, 2, 16, training=True) == 3 * perf.count_flops(model, 2, 16)


def test_flops_by_part_add_up_and_isolate_attention():
    model = perf.meta_model(TINY_CONFIG)
    parts = perf.counted_flops_by_part(model, 2, 16)
    assert sum(parts.values()) == perf.count_flops(model, 2, 16)
    assert parts["attention scores and weighted values"] == perf.attention_matmul_flops(
        TINY_CONFIG, 2, 16)
    assert parts["output head"] == 2 * 2 * 16 * 32 * 101
    assert parts["feed-forward"] == 2 * parts["attention projections (query, key, value, output)"]


@pytest.mark.parametrize("size, parameters", [
    ("124M", 163_009_536), ("355M", 406_212_608),
    ("774M", 838_220_800), ("1558M", 1_637_792_000),
])
def test_gpt2_size_configs_have_the_book_parameter_counts(size, parameters):
    model = perf.meta_model(perf.gpt2_config(size))
    assert sum(p.numel() for p in model.parameters()) == parameters


def test_flops_table_rows_are_consistent():
    (row,) = perf.flops_table(["124M"], batch_size=1, seq_len=64)
    assert row["matmul parameters"] == 123_532_032
    assert row["forward FLOPs (counted)"] == row["forward FLOPs (2NT + attention)"]
    assert row["training FLOPs (counted)"] == 3 * row["forward FLOPs (counted)"]
    assert row["6NT, N = all parameters"] == 6 * 163_009_536 * 64


@pytest.mark.parametrize("name, dtype, expected", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.5),
    ("NVIDIA H100 PCIe", "bfloat16", 756.5),
    ("NVIDIA H100 PCIe", "float32", 51.0),
    ("NVIDIA H200", "tf32", 494.5),
    ("NVIDIA A100-SXM4-80GB", "float32", 19.5),
    ("NVIDIA A100-PCIE-40GB", "bfloat16", 312.0),
    ("NVIDIA A10", "bfloat16", 125.0),
    ("NVIDIA L4", "float32", 30.3),
    ("NVIDIA GeForce RTX 4090", "bfloat16", 165.2),
    ("Tesla T4", "float32", 8.1),
    # unknown, or a different chip under a similar name: measure instead
    ("NVIDIA A10G", "bfloat16", None),
    ("NVIDIA H100 NVL", "bfloat16", None),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", "bfloat16", None),
    ("NVIDIA L40", "bfloat16", None),
    ("Tesla T4", "bfloat16", None),
])
def test_nvidia_dense_peak_lookup(name, dtype, expected):
    found = perf.nvidia_dense_peak(name, dtype)
    assert (found and found[0]) == expected or (found is None and expected is None)


def test_float32_uses_the_tf32_peak_only_when_pytorch_allows_tf32():
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert perf.cuda_peak_dtype_name(torch.float32) == "float32"
        torch.set_float32_matmul_precision("high")
        assert perf.cuda_peak_dtype_name(torch.float32) == "tf32"
        assert perf.cuda_peak_dtype_name(torch.bfloat16) == "bfloat16"
    finally:
        torch.set_float32_matmul_precision(before)


def test_cpu_peak_is_measured_and_says_so():
    peak, source = perf.peak_flops_per_second(torch.device("cpu"), torch.float32,
                                              matmul_size=128)
    assert peak > 1e6
    assert source.startswith("measured: 128x128 torch.mm")


def test_throughput_row_is_consistent_with_the_counted_flops():
    peak = 1e9
    row = perf.throughput_row(TINY_CONFIG, torch.device("cpu"), torch.float32, batch_size=2,
                              seq_len=4, peak=peak, training=True, repeats=1)
    assert row["mode"] == "training (fwd+bwd)"
    assert row["tokens/s"] == pytest.approx(2 * 4 / row["seconds per step"])
    flops = perf.count_flops(perf.meta_model(TINY_CONFIG), 2, 4, training=True)
    assert row["model GFLOP/s"] == pytest.approx(flops / row["seconds per step"] / 1e9)
    assert row["MFU"] == pytest.approx(row["model GFLOP/s"] * 1e9 / peak)


def test_markdown_table():
    table = perf.markdown_table([{"a": 1.234, "b": "x"}], {"a": ".1f"})
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1.2 | x |"]


@pytest.mark.slow
def test_script_prints_flops_and_throughput_tables():
    result = run_script("ch04/02_performance-analysis/performance.py", "--sizes", "124M",
                        "--throughput-sizes", "124M", "--seq-len", "8", "--repeats", "1",
                        "--matmul-size", "128", "--skip-training", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "peak used for MFU: measured: 128x128 torch.mm" in result.stdout
    assert "| 124M | 163,009,536 | 123,532,032 |" in result.stdout
    assert "| 124M | inference (fwd) |" in result.stdout
