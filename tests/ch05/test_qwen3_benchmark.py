"""ch05/11_qwen3/benchmark.py runs the three implementations on the same weights.

(Its bad arguments are cases in tests/test_bad_input.py.)
"""

from support.course_imports import import_course_module

benchmark = import_course_module("ch05/11_qwen3/benchmark.py")


def test_tiny_run_reports_three_implementations_with_the_same_ids(capsys):
    assert benchmark.main(["--model", "tiny", "--dtype", "float32", "--max_new_tokens", "6",
                           "--prompt-length", "5", "--repeats", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| ours", "| Hugging"))]
    assert len(rows) == 3
    for row in rows:
        seconds, tokens_per_second = (float(cell) for cell in row.split("|")[2:4])
        assert seconds > 0 and tokens_per_second > 0
    assert "KV cache and no cache: the same token ids" in out
    assert "KV cache and Hugging Face: the same token ids" in out
    assert "load average" in out and "CPU:" in out
