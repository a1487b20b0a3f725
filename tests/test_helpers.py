"""The shared test helpers do what the other tests rely on."""

import json
import math
import sys

import nbformat
import pytest
from support.course_imports import notebook_definitions
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


def write_notebook(path, *cells):
    nbformat.write(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells]), path)
    return path


def test_notebook_definitions_leave_the_demonstrations_out(tmp_path):
    (tmp_path / "data.txt").write_text("read relative to the notebook")
    notebook = write_notebook(
        tmp_path / "demo.ipynb",
        "import math\nSIZE = 4\nsteps = 3\nSTEPS = steps\nprint('demonstration')",
        "def area(r):\n    return math.pi * r * r\n\n\nsurface = area\nshown = area(SIZE)",
        "TEXT = open('data.txt').read()\nLIMITS = [n for n in range(SIZE)]")
    nb = notebook_definitions(notebook, ["area", "SIZE"])
    assert nb.area(1) == math.pi and nb.surface is nb.area and nb.LIMITS == [0, 1, 2, 3]
    assert nb.TEXT == "read relative to the notebook"
    assert not hasattr(nb, "steps") and not hasattr(nb, "STEPS") and not hasattr(nb, "shown")
    assert notebook_definitions(notebook) is nb  # loaded once
    with pytest.raises(LookupError, match="'volume'"):
        notebook_definitions(notebook, ["area", "volume"])

    run = notebook_definitions(notebook, whole_cells=True)
    assert run.shown == math.pi * 16 and run.STEPS == 3
    assert notebook_definitions(notebook, whole_cells=True) is not run  # a fresh run


def test_each_folder_imports_its_own_siblings(tmp_path):
    values = {}
    for chapter in ("ch04", "ch05"):
        folder = tmp_path / chapter
        folder.mkdir()
        (folder / "previous_chapters.py").write_text(f"CHAPTER = {chapter!r}\n")
        notebook = write_notebook(folder / "nb.ipynb", "from previous_chapters import CHAPTER")
        values[chapter] = notebook_definitions(notebook).CHAPTER
        assert "previous_chapters" not in sys.modules
    assert values == {"ch04": "ch04", "ch05": "ch05"}
