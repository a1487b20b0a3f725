"""Appendix A: the book's figures, and the DDP script run for real on the CPU."""

import re
import subprocess
import sys

import pytest
from notebooks import REPO_ROOT, execute_notebook

FOLDER = REPO_ROOT / "appendix-A" / "01_main-chapter-code"
DDP_TIMEOUT = 300  # seconds; a hanging run fails the test instead of the suite


def notebook_text_output(nb):
    """All printed text of an executed notebook, as one string."""
    chunks = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            chunks.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(chunks)


@pytest.fixture(scope="module")
def part1_output(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("appendix_a")
    notebook = workdir / "code-part1.ipynb"
    notebook.write_bytes((FOLDER / "code-part1.ipynb").read_bytes())
    return notebook_text_output(execute_notebook(notebook))


def test_logistic_regression_toy_matches_book(part1_output):
    assert "loss: 0.0852" in part1_output
    assert "dL/dw1: -0.0898" in part1_output
    assert "dL/db: -0.0817" in part1_output


def test_from_numpy_shares_memory_and_tensor_copies(part1_output):
    # the demo sets array3d[0, 0, 0] = 999 after making both tensors
    assert re.search(r"torch\.tensor \(copy\):\s*tensor\(\[\[\[1, 2\]", part1_output)
    assert re.search(r"torch\.from_numpy \(shared\):\s*tensor\(\[\[\[999,", part1_output)


def test_network_parameter_count_matches_book(part1_output):
    assert "Total number of trainable model parameters: 2213" in part1_output


def test_training_reaches_full_accuracy(part1_output):
    assert "Training accuracy: 1.0" in part1_output
    assert "Test accuracy: 1.0" in part1_output
    # a print can reach the notebook as two stream chunks (joined with a newline above)
    assert re.search(r"restored model gives identical outputs:\s+True", part1_output)


def run_ddp(*command_args):
    return subprocess.run(
        [sys.executable, *command_args], cwd=FOLDER, capture_output=True, text=True,
        timeout=DDP_TIMEOUT,
    )


def assert_trained_on_two_ranks(result):
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        losses = re.findall(rf"\[rank {rank}\] epoch 003/003 .* loss (\d+\.\d+)", result.stdout)
        assert losses, f"rank {rank} did not reach the last epoch:\n{result.stdout}"
    assert "Training accuracy: 1.0" in result.stdout
    assert "Test accuracy: 1.0" in result.stdout


@pytest.mark.slow
def test_ddp_script_spawns_two_gloo_processes():
    assert_trained_on_two_ranks(run_ddp("DDP-script.py"))


@pytest.mark.slow
def test_ddp_script_under_torchrun():
    result = run_ddp("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                     "DDP-script.py")
    assert_trained_on_two_ranks(result)


@pytest.mark.slow
def test_ddp_failure_of_one_rank_stops_the_run():
    result = run_ddp("DDP-script.py", "--fail-rank", "1")
    assert result.returncode != 0
    assert "Training failed, all processes stopped" in result.stderr
    assert "rank 1: simulated failure" in result.stderr
    assert "Test accuracy" not in result.stdout
