"""ch05/12_gemma3/benchmark.py runs all four generations and compares like with like.

(Its bad arguments are cases in tests/test_bad_input.py.)
"""

from support.benchmark_smoke import run_tiny_benchmark


def test_tiny_run_reports_four_generations_with_the_same_ids(capsys):
    # 4 prompt + 8 new tokens with a window of 4: the cache crosses the window.
    out = run_tiny_benchmark("ch05/12_gemma3/benchmark.py", capsys, "--max_new_tokens", "8",
                             "--prompt-length", "4", implementations=4)
    assert "all four produced the same token ids" in out
    assert "load average" in out
