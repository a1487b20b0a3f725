"""ch05/11_qwen3/benchmark.py runs the three implementations on the same weights.

(Its bad arguments are cases in tests/test_bad_input.py.)
"""

from support.benchmark_smoke import run_tiny_benchmark


def test_tiny_run_reports_three_implementations_with_the_same_ids(capsys):
    out = run_tiny_benchmark("ch05/11_qwen3/benchmark.py", capsys, "--dtype", "float32",
                             "--max_new_tokens", "6", "--prompt-length", "5", implementations=3)
    assert "KV cache and no cache: the same token ids" in out
    assert "KV cache and Hugging Face: the same token ids" in out
    assert "load average" in out and "CPU:" in out
