"""ch05/05_bonus_hparam_tuning/hparam_search.py on a two-trial grid with a tiny model."""

import csv
import json

import pytest
from support.course_imports import import_course_module

search = import_course_module("ch05/05_bonus_hparam_tuning/hparam_search.py")

TWO_TRIALS = {**{name: values[:1] for name, values in search.DEFAULT_GRID.items()},
              "peak_lr": [5e-4, 1e-3]}


def run_search(tmp_path, *extra):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(TWO_TRIALS))
    search.run_from_command_line([
        "--tiny", "--grid", str(grid), "--epochs", "1", "--device", "cpu",
        "--eval-freq", "100", "--data-dir", str(tmp_path),
        "--output", str(tmp_path / "results.csv"), *extra])
    with open(tmp_path / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_trials_then_resume_repeats_nothing(tmp_path, capsys):
    rows = run_search(tmp_path)
    assert sorted(json.loads(row["peak_lr"]) for row in rows) == [5e-4, 1e-3]
    assert all(0 < float(row["best_val_loss"]) < 11 for row in rows)  # ln(50257) = 10.8
    printed = capsys.readouterr()
    assert "Best of 2 trials" in printed.out

    again = run_search(tmp_path, "--resume")
    assert again == rows  # the same two rows, nothing trained again
    assert "2 trials already done, 0 to run" in capsys.readouterr().err


def test_an_existing_results_file_is_not_replaced(tmp_path, capsys):
    results = tmp_path / "results.csv"
    results.write_text("my own file\n")
    with pytest.raises(SystemExit) as exit_info:
        search.parse_args(["--output", str(results)])
    assert exit_info.value.code == 2
    assert "--output" in capsys.readouterr().err
    assert results.read_text() == "my own file\n"


def test_trial_order_is_seeded_and_covers_the_grid():
    first = search.trials_from_grid(search.DEFAULT_GRID, 0, seed=1)
    assert len(first) == 3 * 2 ** 6
    assert first == search.trials_from_grid(search.DEFAULT_GRID, 0, seed=1)
    assert first[:5] == search.trials_from_grid(search.DEFAULT_GRID, 5, seed=1)
