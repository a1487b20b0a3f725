"""gpt_train.py from the shell: --help, a tiny end-to-end run, and the offline fallback."""

import os
from pathlib import Path

import pytest
import torch
from support.course_imports import REPO_ROOT, import_course_module
from support.helpers import run_script, run_script_in_process

SCRIPT = "ch05/01_main-chapter-code/gpt_train.py"
SCRIPT_DIR = (REPO_ROOT / SCRIPT).parent
# ~5,000 tokens of text in batches of 16 x 32 tokens: about 9 steps per epoch
TINY_RUN = ["--model-config", "tiny", "--epochs", "2", "--context-length", "32",
            "--batch-size", "16", "--eval-freq", "3", "--eval-iter", "1", "--device", "cpu"]

# Loaded into a subprocess via PYTHONPATH: any attempt to open a connection fails,
# as on a machine with no network.
BLOCK_NETWORK = '''
import socket


def _no_network(*args, **kwargs):
    raise OSError("network access blocked by the test")


socket.socket.connect = _no_network
socket.create_connection = _no_network
socket.getaddrinfo = _no_network
'''


def run_gpt_train(args, env_changes, cwd):
    return run_script(SCRIPT, *args, cwd=cwd, env={**os.environ, **env_changes})


def losses_printed(stdout):
    return [float(line.split("Train loss ")[1].split(",")[0])
            for line in stdout.splitlines() if "Train loss " in line]


def test_help_lists_the_options(tmp_path):
    result = run_script_in_process(SCRIPT, ["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--epochs", "--lr", "--batch-size", "--context-length", "--text-file",
                   "--output-dir", "--seed", "--device", "--eval-freq"):
        assert option in result.stdout


@pytest.mark.slow
@pytest.mark.needs_mirror("the-verdict.txt")
def test_tiny_run_trains_and_saves_a_loadable_model(tmp_path):
    result = run_gpt_train([*TINY_RUN, "--output-dir", str(tmp_path / "out"),
                         "--data-dir", str(tmp_path / "data")], {}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Training text: the-verdict.txt, 20,479 characters" in result.stdout
    losses = losses_printed(result.stdout)
    assert len(losses) >= 3 and losses[-1] < losses[0]
    assert result.stdout.count("Every effort moves you") == 2  # a sample per epoch

    gpt_utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")
    pc = import_course_module("ch05/01_main-chapter-code/previous_chapters.py")
    checkpoint_path = tmp_path / "out" / "model.pth"
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    assert checkpoint["config"]["context_length"] == 32
    model = pc.GPTModel(checkpoint["config"])
    gpt_utils.load_checkpoint(checkpoint_path, model)
    assert (tmp_path / "out" / "loss-plot.pdf").stat().st_size > 0


@pytest.mark.slow
def test_without_network_or_mirror_it_trains_on_the_fallback_text(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK_NETWORK)
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    env = {"PYTHONPATH": str(tmp_path), "LLMS_FROM_SCRATCH_MIRROR": str(empty_mirror)}
    result = run_gpt_train([*TINY_RUN, "--epochs", "1", "--output-dir", str(tmp_path / "out"),
                         "--data-dir", str(tmp_path / "data")], env, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    mentions = [line for line in result.stdout.splitlines() if "the-verdict.txt" in line]
    assert mentions == ["Could not download the-verdict.txt (no network and no copy in "
                        "$LLMS_FROM_SCRATCH_MIRROR): training on fallback-text.txt instead."]
    fallback_chars = len(Path(SCRIPT_DIR / "fallback-text.txt").read_text(encoding="utf-8"))
    assert f"Training text: fallback-text.txt, {fallback_chars:,} characters" in result.stdout
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out" / "model.pth").is_file()
    assert not (tmp_path / "data" / "the-verdict.txt").exists()


@pytest.mark.slow
def test_text_file_option_is_used(tmp_path):
    text_file = tmp_path / "story.txt"
    text = (SCRIPT_DIR / "fallback-text.txt").read_text(encoding="utf-8")[:8_000]
    text_file.write_text(text, encoding="utf-8")
    result = run_gpt_train([*TINY_RUN, "--epochs", "1", "--text-file", str(text_file),
                         "--output-dir", str(tmp_path / "out")], {}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Training text: story.txt" in result.stdout
    assert "Could not download" not in result.stdout
