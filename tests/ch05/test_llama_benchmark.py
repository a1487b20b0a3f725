"""ch05/07_gpt_to_llama/benchmark.py runs and compares like with like.

(Its bad arguments are cases in tests/test_bad_input.py.)
"""

from support.benchmark_smoke import run_tiny_benchmark


def test_tiny_run_reports_both_implementations_with_the_same_ids(capsys):
    out = run_tiny_benchmark("ch05/07_gpt_to_llama/benchmark.py", capsys, "--dtype", "float32",
                             "--max_new_tokens", "6", "--prompt-length", "5", implementations=2)
    assert "both produced the same token ids" in out
