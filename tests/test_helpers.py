"""The shared test helpers do what the other tests rely on."""

import json

import pytest
from support.helpers import run_script_in_process, tiny_gpt_config
from notebooks import load_test_settings


def test_one_settings_file_per_test_folder(tmp_path):
    folder = tmp_path / "tests" / "ch09"
    folder.mkdir(parents=True)
    (folder / "notebook_parameters.json").write_text(json.dumps({"ch09/a.ipynb": {}}))
    assert load_test_settings(tmp_path) == {"ch09/a.ipynb": {}}

    (folder / "bonus_notebook_parameters.json").write_text(json.dumps({"ch09/b.ipynb": {}}))
    with pytest.raises(ValueError, match="merge it into notebook_parameters.json"):
        load_test_settings(tmp_path)


def test_script_in_process_reports_exit_code_and_output(tmp_path):
    script = "appendix-A/01_main-chapter-code/DDP-script.py"
    assert "--num-procs" in run_script_in_process(script, ["--help"], tmp_path).stdout
    crash = run_script_in_process(script, ["--num-procs", "0"], tmp_path)
    assert crash.returncode == 2 and "--num-procs" in crash.stderr


def test_tiny_config_rejects_unknown_keys():
    assert tiny_gpt_config(n_layers=1)["n_layers"] == 1
    with pytest.raises(KeyError):
        tiny_gpt_config(layers=1)
