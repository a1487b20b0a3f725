"""hparam_search.py: resume after a cut-short results file, grid values checked
before any training, and neither the grid nor a user's text ever replaced."""

import csv
import json
import os

import pytest
from support.course_imports import import_course_module

search = import_course_module("ch05/05_bonus_hparam_tuning/hparam_search.py")

TWO_TRIALS = {**{name: values[:1] for name, values in search.DEFAULT_GRID.items()},
              "peak_lr": [5e-4, 1e-3]}


def search_args(tmp_path, grid, *extra):
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps(grid))
    return ["--tiny", "--grid", str(grid_file), "--epochs", "1", "--device", "cpu",
            "--eval-freq", "100", "--data-dir", str(tmp_path),
            "--output", str(tmp_path / "results.csv"), *extra]


def exit_line(capsys, function, *args):
    with pytest.raises(SystemExit) as exit_info:
        function(*args)
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in error, error
    return error


def test_resume_runs_a_cut_short_last_row_again(tmp_path, capsys, monkeypatch):
    # The resume logic is under test, not training (test_hparam_search.py trains).
    monkeypatch.setattr(search, "run_trial", lambda trial, *args: {
        **trial, "best_val_loss": 6.25, "final_train_loss": 6.5, "seconds": 0.1})
    done = {**{name: values[0] for name, values in TWO_TRIALS.items()},
            "best_val_loss": 7.5, "final_train_loss": 8.0, "seconds": 1.0}
    search.write_results(tmp_path / "results.csv", [done, {**done, "peak_lr": 1e-3}])
    text = (tmp_path / "results.csv").read_text()
    (tmp_path / "results.csv").write_text(text[:-12])  # the last row, cut short
    os.chmod(tmp_path / "results.csv", 0o644)

    search.run_from_command_line(search_args(tmp_path, TWO_TRIALS, "--resume"))

    captured = capsys.readouterr()
    assert "left out 1 incomplete row(s)" in captured.out
    assert "1 trials already done, 1 to run" in captured.err
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [json.loads(row["peak_lr"]) for row in rows] == [5e-4, 1e-3]
    assert rows[0]["best_val_loss"] == "7.5"  # the good row is kept as it was
    assert rows[1]["best_val_loss"] == "6.25"  # the cut-short trial ran again
    assert (tmp_path / "results.csv").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


@pytest.mark.parametrize(("name", "values"), [
    ("peak_lr", [float("inf")]), ("peak_lr", [-1e-3]), ("batch_size", [0]),
    ("batch_size", [2.5]), ("drop_rate", [1.0]), ("weight_decay", [-0.1]),
    ("warmup_steps", ["ten"]), ("max_norm", [0]), ("min_lr", [True]),
])
def test_grid_values_are_checked_before_any_work(tmp_path, capsys, name, values):
    grid = {**TWO_TRIALS, name: values}
    error = exit_line(capsys, search.parse_args, search_args(tmp_path, grid))
    assert "--grid" in error and name in error
    assert not (tmp_path / "results.csv").exists()


def test_output_equal_to_the_grid_is_refused(tmp_path, capsys):
    args = search_args(tmp_path, TWO_TRIALS, "--resume")
    args[args.index("--output") + 1] = str(tmp_path / "grid.json")
    error = exit_line(capsys, search.parse_args, args)
    assert "--output" in error and "--grid" in error
    assert json.loads((tmp_path / "grid.json").read_text()) == TWO_TRIALS


def test_a_batch_larger_than_the_training_windows_is_refused(tmp_path, capsys):
    error = exit_line(capsys, search.run_from_command_line,
                      search_args(tmp_path, {**TWO_TRIALS, "batch_size": [10_000]}))
    assert "--grid" in error and "0 steps" in error
    assert not (tmp_path / "results.csv").exists()


def test_a_users_own_the_verdict_is_used_as_it_is(tmp_path, capsys):
    users = tmp_path / "the-verdict.txt"
    users.write_text("My edited story. " * 2000)
    assert search.load_text(tmp_path) == users.read_text()
    assert f"Using {users} as it is" in capsys.readouterr().out
