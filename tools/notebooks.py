"""Find, parametrize and execute the repository's notebooks.

Used by `test_notebooks.py` (every notebook, small parameters) and by
`refresh_notebook.py` (one notebook, default parameters, outputs saved).
"""

import json
import pprint
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
ENVIRONMENT_TAG = "environment"
PRETRAINED_TAG = "pretrained-weights"
# Cells that need a running LLM server (Ollama, the OpenAI API): like pretrained
# weights, out of reach when the committed outputs are made.
LLM_SERVER_TAG = "llm-server"
UNAVAILABLE_TAGS = (PRETRAINED_TAG, LLM_SERVER_TAG)
DEFAULT_TIMEOUT = 180

ENVIRONMENT_CELL_SOURCE = """\
# Which PyTorch version and device produced the outputs in this notebook
import torch

device = torch.device(
    "cuda" if torch.cuda.is_available()
    else "mps" if torch.backends.mps.is_available()
    else "cpu"
)
print(f"torch {torch.__version__}, device: {device}")"""


class NotebookFailure(AssertionError):
    """A notebook cell raised; the message names notebook, cell and error."""


def find_notebooks(root=REPO_ROOT):
    """Every notebook in the repository, as paths relative to `root`, sorted."""
    found = []
    for path in Path(root).rglob("*.ipynb"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue  # .ipynb_checkpoints, .venv, ...
        found.append(relative.as_posix())
    return sorted(found)


SETTINGS_FILE_NAME = "notebook_parameters.json"


def load_test_settings(root=REPO_ROOT):
    """Merge each test folder's `notebook_parameters.json` into one dictionary.

    Keys are repository-relative notebook paths; values hold "parameters"
    (names and small values to inject), optionally "timeout" (seconds for
    the whole notebook), "openai_gpt2_sizes" (checkpoints it needs),
    "openai_gpt2_hparams" (smaller hyperparameters for those checkpoints),
    "hf_hub_repos" (the Hugging Face repositories it downloads from, served as
    tiny random-weight stand-ins from a local hub cache with HF_HUB_OFFLINE=1 by
    tests/support/fake_hub.py) and "setups" (local LLM servers and model files, see
    tests/support/notebook_setups.py).
    A settings file under any other name would be silently ignored, so it
    is an error.
    """
    settings = {}
    for settings_file in sorted(Path(root, "tests").rglob("*notebook_parameters.json")):
        if settings_file.name != SETTINGS_FILE_NAME:
            raise ValueError(f"{settings_file}: merge it into {SETTINGS_FILE_NAME} "
                             "in the same folder (one settings file per test folder)")
        for notebook, entry in json.loads(settings_file.read_text()).items():
            if notebook in settings:
                raise ValueError(f"{notebook} is configured twice (again in {settings_file})")
            settings[notebook] = entry
    return settings


def cell_tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def parameters_cell_index(nb):
    indices = [i for i, cell in enumerate(nb.cells) if PARAMETERS_TAG in cell_tags(cell)]
    if len(indices) > 1:
        raise ValueError("a notebook may have only one cell tagged 'parameters'")
    return indices[0] if indices else None


def inject_parameters(nb, parameters):
    """Insert a cell overriding `parameters` right after the 'parameters' cell.

    The same idea as papermill: the reader-facing cell keeps the book's
    defaults and the test adds assignments after it. A cell injected before (the
    committed record of a reduced run, `refresh_notebook.py --parameters`) is
    replaced, so each run's own values are the ones that count.
    """
    nb.cells = [cell for cell in nb.cells if INJECTED_TAG not in cell_tags(cell)]
    if not parameters:
        return nb
    index = parameters_cell_index(nb)
    if index is None:
        raise ValueError("parameters were given but no cell is tagged 'parameters'")
    source = "\n".join(f"{name} = {pprint.pformat(value, width=90, sort_dicts=False)}"
                       for name, value in parameters.items())  # lines that ruff accepts
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(index + 1, cell)
    return nb


def describe_failure(path, nb, cell_index, error):
    cell = nb.cells[cell_index]
    first_lines = "\n".join(cell.source.splitlines()[:5])
    code_cells_before = sum(c.cell_type == "code" for c in nb.cells[:cell_index])
    return (
        f"{path}: code cell #{code_cells_before + 1} (cell index {cell_index}) failed.\n"
        f"--- cell source (first lines) ---\n{first_lines}\n"
        f"--- error ---\n{error}"
    )


def execute_notebook(path, parameters=None, timeout=DEFAULT_TIMEOUT, skip_pretrained=False,
                     kernel_env=None):
    """Run the notebook at `path` top to bottom in its own folder; return it.

    The kernel inherits this process's environment, or `kernel_env` if given.
    `timeout` bounds the whole notebook. With `skip_pretrained`, a failure in
    the first cell tagged 'pretrained-weights' (weights not downloadable) or
    'llm-server' (no LLM server answers) leaves that cell and all later ones
    with either tag without output.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    deadline = time.monotonic() + timeout
    skipping_pretrained = False
    kernel_options = {} if kernel_env is None else {"env": kernel_env}
    with client.setup_kernel(**kernel_options):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if time.monotonic() > deadline:
                raise NotebookFailure(f"{path}: took longer than {timeout} s in total")
            unavailable = any(tag in cell_tags(cell) for tag in UNAVAILABLE_TAGS)
            if skipping_pretrained and unavailable:
                cell.outputs, cell.execution_count = [], None
                continue
            try:
                client.execute_cell(cell, index)
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
                if skip_pretrained and unavailable:
                    print(f"{path}: pretrained weights or LLM server unavailable, "
                          "leaving those cells empty")
                    skipping_pretrained = True
                    cell.outputs, cell.execution_count = [], None
                    continue
                raise NotebookFailure(describe_failure(path, nb, index, error)) from None
    return nb
