"""The smoke test that every model benchmark script (ch05/*/benchmark.py) shares.

Each script times our implementations and Hugging Face's on the same weights and prints
a table with one row per implementation: `| ours ... | seconds | tokens/s | ...` or
`| Hugging Face ... |`. The tests run the script's tiny model once on the CPU and check
that table; each test then checks what its script promises about the token ids.
"""

from support.course_imports import import_course_module


def run_tiny_benchmark(script, capsys, *options, implementations):
    """Run `script`'s `main` on its tiny model; return what it printed.

    The table must have one row for each of the `implementations`, each with positive
    seconds and speed (tokens / seconds): the scripts print three significant digits
    below one second, so even a run of a few milliseconds reads above zero.
    """
    benchmark = import_course_module(script)
    assert benchmark.main(["--model", "tiny", *options, "--repeats", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| ours", "| Hugging"))]
    assert len(rows) == implementations
    for row in rows:
        seconds, tokens_per_second = (float(cell) for cell in row.split("|")[2:4])
        assert seconds > 0 and tokens_per_second > 0
    return out
