"""ch05/12_gemma3/benchmark.py runs all four generations and compares like with like.

(Its bad arguments are cases in tests/test_bad_input.py.)
"""

from support.course_imports import import_course_module

benchmark = import_course_module("ch05/12_gemma3/benchmark.py")


def test_tiny_run_reports_four_generations_with_the_same_ids(capsys):
    # 4 prompt + 8 new tokens with a window of 4: the cache crosses the window.
    assert benchmark.main(["--model", "tiny", "--max_new_tokens", "8", "--prompt-length", "4",
                           "--repeats", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| ours", "| Hugging"))]
    assert len(rows) == 4
    for row in rows:
        seconds, tokens_per_second = (float(cell) for cell in row.split("|")[2:4])
        assert seconds > 0 and tokens_per_second > 0
    assert "all four produced the same token ids" in out
    assert "load average" in out
