"""ch05/07_gpt_to_llama/benchmark.py runs and compares like with like.

(Its bad arguments are cases in tests/test_bad_input.py.)
"""

from support.course_imports import import_course_module

benchmark = import_course_module("ch05/07_gpt_to_llama/benchmark.py")


def test_tiny_run_reports_both_implementations_with_the_same_ids(capsys):
    assert benchmark.main(["--model", "tiny", "--dtype", "float32", "--max_new_tokens", "6",
                           "--prompt-length", "5", "--repeats", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| ours", "| Hugging"))]
    assert len(rows) == 2
    for row in rows:
        seconds, tokens_per_second = (float(cell) for cell in row.split("|")[2:4])
        assert seconds > 0 and tokens_per_second > 0
    assert "both produced the same token ids" in out
