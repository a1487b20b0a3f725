"""The attention benchmark: its bookkeeping (on made-up timings) and a tiny real run."""

import pytest
from support.course_imports import import_course_module
from support.helpers import run_script

SCRIPT = "ch03/02_bonus_efficient-multihead-attention/benchmark.py"
benchmark = import_course_module(SCRIPT)


def made_up_report():
    """Timings in seconds chosen so that every ratio is easy to check by hand."""
    names = list(benchmark.IMPLEMENTATIONS)
    forward = {name: [0.010, 0.030, 0.020] for name in names}  # median 20 ms
    forward[benchmark.REFERENCE] = [0.005, 0.004, 0.006]        # median 5 ms
    backward = {name: [0.050] for name in names[:-1]}
    backward[benchmark.REFERENCE] = [0.025]
    backward[names[-1]] = "NotImplementedError: no backward here"
    return {
        "machine": "test machine", "device": "cpu", "torch": "x.y",
        "shape": dict(batch_size=1, num_tokens=2, emb_dim=4, num_heads=2),
        "warmup": 1, "repeats": 3,
        "results": {"forward": forward, "forward+backward": backward},
        "skipped": {},
    }


def test_summary_uses_medians_relative_to_sdpa_of_the_same_run():
    rows = dict(benchmark.summarize(made_up_report()))
    names = list(benchmark.IMPLEMENTATIONS)
    assert list(rows) == names
    assert rows[benchmark.REFERENCE]["forward"] == pytest.approx((5.0, 1.0))
    assert rows[names[0]]["forward"] == pytest.approx((20.0, 4.0))
    assert rows[names[0]]["forward+backward"] == pytest.approx((50.0, 2.0))
    assert rows[names[-1]]["forward+backward"].startswith("NotImplementedError")


def test_table_lists_every_implementation_and_failures():
    table = benchmark.format_table(made_up_report())
    for name in benchmark.IMPLEMENTATIONS:
        assert f"| {name}" in table
    assert "4.00x" in table and "1.00x" in table
    assert "forward+backward: not run (NotImplementedError: no backward here)" in table


@pytest.mark.slow
def test_script_runs_and_saves_plot(tmp_path):
    plot = tmp_path / "bench.png"
    result = run_script(SCRIPT, "--batch-size", "1", "--num-tokens", "8", "--emb-dim", "16",
                        "--num-heads", "2", "--warmup", "1", "--repeats", "2",
                        "--device", "cpu", "--plot", plot)
    assert result.returncode == 0, result.stderr
    assert "torch " in result.stdout and "Machine:" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(benchmark.IMPLEMENTATIONS)  # header + one per implementation
    sdpa_row = next(row for row in rows if benchmark.REFERENCE in row)
    assert sdpa_row.count("1.00x") == 2
    assert plot.stat().st_size > 10_000
