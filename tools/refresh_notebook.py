"""Re-execute notebooks in place so their committed outputs are real.

    python tools/refresh_notebook.py ch02/01_main-chapter-code/ch02.ipynb [...]

Each notebook runs top to bottom with its default (the book's) parameters,
in its own folder, and is saved with the outputs of that run. The first code
cell reports the torch version and device; if a notebook lacks that cell, it
is inserted. Cells tagged 'pretrained-weights' are left without output when
the OpenAI weights cannot be downloaded, and cells tagged 'llm-server' when no
LLM server (Ollama, the OpenAI API) answers (their markdown explains why).
"""

import argparse
import json
import sys
from pathlib import Path

import nbformat
from notebooks import (
    ENVIRONMENT_CELL_SOURCE,
    ENVIRONMENT_TAG,
    cell_tags,
    execute_notebook,
)


def ensure_environment_cell(path):
    """Make the first code cell the tagged cell that prints torch and device."""
    nb = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    if code_cells and ENVIRONMENT_TAG in cell_tags(code_cells[0]):
        return
    cell = nbformat.v4.new_code_cell(
        ENVIRONMENT_CELL_SOURCE, metadata={"tags": [ENVIRONMENT_TAG]}
    )
    first_code = nb.cells.index(code_cells[0]) if code_cells else len(nb.cells)
    nb.cells.insert(first_code, cell)
    nbformat.write(nb, path)


def refresh(path, timeout, parameters=None):
    ensure_environment_cell(path)
    nb = execute_notebook(path, parameters=parameters, timeout=timeout, skip_pretrained=True)
    nbformat.write(nb, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=4 * 3600,
                        help="seconds allowed for each notebook (default: 4 hours)")
    parser.add_argument("--parameters", type=json.loads, default=None,
                        help="a JSON object of parameter values for a run smaller than the "
                             "book's (kept visible as an injected cell after the "
                             "'parameters' cell; say so in the README)")
    args = parser.parse_args()
    for path in args.notebooks:
        print(f"refreshing {path} ...", flush=True)
        refresh(path.resolve(), args.timeout, args.parameters)
        print(f"  saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
