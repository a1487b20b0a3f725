"""ch05/07_gpt_to_llama/benchmark.py: runs, checks its arguments, and compares like with like."""

import pytest
from course_imports import import_course_module

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


@pytest.mark.parametrize("argv, flag", [
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--repeats", "-1"], "--repeats"),
    (["--model", "70B"], "--model"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, flag):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err
