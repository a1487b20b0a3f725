"""Appendix E's benchmark script: what it measures (its bad arguments: tests/test_bad_input.py)."""

import subprocess
import sys

import pytest
from support.course_imports import REPO_ROOT, import_course_module

SCRIPT = REPO_ROOT / "appendix-E/01_main-chapter-code/lora_benchmark.py"
bench = import_course_module("appendix-E/01_main-chapter-code/lora_benchmark.py")


@pytest.mark.usefixtures("single_thread_torch")
def test_lora_trains_far_fewer_parameters_with_far_less_optimizer_state():
    child, device, settings = bench.parse_args(["--test-mode", "--device", "cpu"])
    assert child is None and device == bench.torch.device("cpu")
    full, lora = (bench.run_mode(mode, device, **settings) for mode in bench.FINETUNING_MODES)
    emb, layers = bench.TINY_MODEL["emb_dim"], bench.TINY_MODEL["n_layers"]
    # every linear layer gets rank * (in + out) LoRA parameters
    per_block = 16 * (4 * 2 * emb + 2 * 5 * emb)
    assert lora["trainable_params"] == layers * per_block + 16 * (emb + 2)
    model = bench.build_classifier(bench.TINY_MODEL, "full", rank=16, alpha=16)
    assert full["trainable_params"] == sum(p.numel() for p in model.parameters())
    for result in (full, lora):
        # AdamW keeps two float32 averages per trainable number
        assert result["optimizer_state_bytes"] >= 8 * result["trainable_params"]
        assert result["gradient_bytes"] == 4 * result["trainable_params"]
        assert result["steps_per_second"] > 0
    assert lora["optimizer_state_bytes"] * 50 < full["optimizer_state_bytes"]


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=SCRIPT.parent, timeout=600)


def test_script_prints_both_modes_side_by_side():
    result = run_script("--test-mode", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("torch ") and "device: cpu" in lines[0]
    assert "| | full finetuning | LoRA |" in lines
    row = next(line for line in lines if line.startswith("| trainable parameters"))
    assert row == "| trainable parameters | 1,666,530 | 18,976 |"
    assert lines[-1].startswith("LoRA: ") and "less optimizer state" in lines[-1]
