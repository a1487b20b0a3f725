"""Execute every notebook in the repository, top to bottom, on the CPU.

Notebooks with long-running knobs get small values injected after their cell
tagged 'parameters' (from each test folder's notebook_parameters.json). Each notebook
runs in a temporary copy of its chapter folder, so downloads and saved files
never land in the working tree.
"""

import ast
import contextlib
import os
import re
import shutil
import subprocess

import nbformat
import pytest
from conftest import running_in_ci
from support import notebook_setups
from support.fake_hub import hub_environment, repo_writers
from notebooks import (
    DEFAULT_TIMEOUT,
    ENVIRONMENT_TAG,
    REPO_ROOT,
    cell_tags,
    execute_notebook,
    find_notebooks,
    load_test_settings,
    parameters_cell_index,
)

NOTEBOOKS = find_notebooks()
SETTINGS = load_test_settings()


def ignored_patterns():
    """The .gitignore patterns, so generated and downloaded files are not copied."""
    lines = (REPO_ROOT / ".gitignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines
            if line.strip() and not line.startswith("#")] + [".git"]


def copy_for_execution(notebook, destination):
    """Copy the notebook's top-level folder and the repository's top-level files."""
    top_folder = notebook.split("/")[0]
    ignore = shutil.ignore_patterns(*ignored_patterns())
    for entry in REPO_ROOT.iterdir():
        if entry.is_file():
            shutil.copy2(entry, destination / entry.name)
    shutil.copytree(REPO_ROOT / top_folder, destination / top_folder, ignore=ignore)
    return destination / notebook


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs(notebook, tmp_path, course_mirror):
    settings = SETTINGS.get(notebook, {})
    workdir = tmp_path / "repo"
    workdir.mkdir()
    copy = copy_for_execution(notebook, workdir)

    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline")
    mirror = course_mirror(settings.get("openai_gpt2_sizes", []),
                           settings.get("openai_gpt2_hparams"))
    if mirror is not None:
        env["LLMS_FROM_SCRATCH_MIRROR"] = str(mirror)
    if settings.get("hf_hub_repos"):
        # Hugging Face hub files: tiny random-weight stand-ins in a local hub cache, offline.
        env.update(hub_environment(tmp_path / "hf-home", settings["hf_hub_repos"]))

    parameters = dict(settings.get("parameters", {}))
    try:
        with contextlib.ExitStack() as setups:
            for name in settings.get("setups", []):  # local servers, model files
                provided = setups.enter_context(getattr(notebook_setups, name)(tmp_path))
                env.update(provided.get("env", {}))
                parameters.update(provided.get("parameters", {}))
            execute_notebook(copy, parameters=parameters,
                             timeout=settings.get("timeout", DEFAULT_TIMEOUT), kernel_env=env)
    except AssertionError as failure:
        if mirror is None and "DownloadError" in str(failure) and not running_in_ci():
            pytest.skip(f"{notebook} needs its data: no network and "
                        "LLMS_FROM_SCRATCH_MIRROR is not set")
        raise


def test_every_notebook_is_executed():
    """Discovery must see every notebook git knows about (tracked or new)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.ipynb"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    missing = sorted(set(listed) - set(NOTEBOOKS))
    assert not missing, f"notebooks not executed by the suite: {missing}"


@pytest.mark.parametrize("notebook", sorted(SETTINGS))
def test_injected_parameters_exist(notebook):
    """Every injected name must be set in the notebook's 'parameters' cell.

    A misspelt name would otherwise be injected silently and the notebook
    would run with the book's full-size settings.
    """
    assert notebook in NOTEBOOKS, f"settings name a notebook that does not exist: {notebook}"
    parameters = SETTINGS[notebook].get("parameters", {})
    if not parameters:
        return
    nb = nbformat.read(REPO_ROOT / notebook, as_version=4)
    index = parameters_cell_index(nb)
    assert index is not None, f"{notebook} has no cell tagged 'parameters'"
    assigned = {
        target.id
        for node in ast.walk(ast.parse(nb.cells[index].source))
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    unknown = sorted(set(parameters) - assigned)
    assert not unknown, f"{notebook}: not assigned in its parameters cell: {unknown}"


def test_every_hub_repository_is_served():
    """A repository named under "hf_hub_repos" must have a writer in the fake hub."""
    served = set(repo_writers())
    named = {repo for entry in SETTINGS.values() for repo in entry.get("hf_hub_repos", [])}
    assert named and named <= served, f"no fake-hub writer for {sorted(named - served)}"


ABSOLUTE_PATH = re.compile(r"(/home/|/Users/|/root/|/work/|/tmp/|[A-Z]:\\\\Users)")


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_committed_notebook_is_portable_and_dated(notebook):
    """No machine's absolute paths; outputs open with the torch version and device."""
    nb = nbformat.read(REPO_ROOT / notebook, as_version=4)
    text = nbformat.writes(nb)
    assert not ABSOLUTE_PATH.search(text), f"{notebook} contains an absolute path"
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    if any(cell.get("outputs") for cell in code_cells):
        first = code_cells[0]
        assert ENVIRONMENT_TAG in cell_tags(first), \
            f"{notebook}: first code cell must be the tagged 'environment' cell"
        printed = "".join(output.get("text", "") for output in first.outputs)
        assert "torch " in printed and "device" in printed, \
            f"{notebook}: refresh it with tools/refresh_notebook.py"
