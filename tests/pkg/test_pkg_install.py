"""The package installs (as a built wheel) into a fresh virtual environment, and imports.

pip builds the wheel from a copy of `pyproject.toml` and `pkg/` (so the build leaves
nothing in the repository) and installs it without dependencies into a venv that
sees the system's packages (torch is not installed twice); every module is then
imported there, from a folder outside the repository, so the import cannot come
from `pkg/`. One pip call, because each costs seconds on a busy machine.
"""

import os
import shutil
import subprocess
import sys

import pytest
from support.course_imports import REPO_ROOT

pytest.importorskip("setuptools")  # the build backend (tests/requirements.txt)

# Imports every module found in the installed package (a failing import fails the test).
IMPORT_EVERYTHING = """
import importlib, pkgutil
import llms_from_scratch
imported = []
for module in pkgutil.walk_packages(llms_from_scratch.__path__, "llms_from_scratch."):
    importlib.import_module(module.name)
    imported.append(module.name)
assert len(imported) >= 20, imported
import pathlib
assert (pathlib.Path(llms_from_scratch.__file__).parent / "README.md").is_file()
print(llms_from_scratch.__file__)
"""


def run(*command, cwd):
    # Without PYTHONPATH, which could point at pkg/ (the Docker image sets it).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_imports_every_module(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "pkg" / "llms_from_scratch", source / "pkg" / "llms_from_scratch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv,
        cwd=tmp_path)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--no-build-isolation", source, cwd=tmp_path)

    location = run(python, "-c", IMPORT_EVERYTHING, cwd=tmp_path).strip()
    assert location.startswith(str(venv)), location
