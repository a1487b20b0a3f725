"""Scripts never write to a user's input, and unlucky settings do not crash a run.

(The download helper's part: permissions, full disk, read-only or missing
folders, SIGTERM, is tested in tests/ch02/test_downloads.py.)
"""

import os

import pytest
import torch
from support.course_imports import import_course_module
from support.helpers import run_script_in_process

USERS_TEXT = "My own notes, which happen to be called the-verdict.txt.\n" * 3


@pytest.mark.parametrize(("script", "extra_args"), [
    ("ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py", []),
    ("ch02/05_bpe-from-scratch/benchmark_bpe.py", ["--vocab-size", "260"]),
])
def test_users_the_verdict_txt_is_only_read(script, extra_args, tmp_path):
    """Before, a --text file named the-verdict.txt with other contents was 're-downloaded'."""
    users_file = tmp_path / "the-verdict.txt"
    users_file.write_text(USERS_TEXT)
    before = users_file.stat().st_mtime_ns

    result = run_script_in_process(
        script, ["--text", "the-verdict.txt", "--repeats", "1", *extra_args], cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert "the-verdict.txt" in result.stdout  # it did time the user's text
    assert users_file.read_text() == USERS_TEXT
    assert users_file.stat().st_mtime_ns == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["the-verdict.txt"]


def test_attention_benchmark_without_warmup_reports_what_cannot_run():
    """FlexAttention has no backward pass on a CPU; with --warmup 0 the first
    timed call is the one that finds out, and the run must go on."""
    benchmark = import_course_module("ch03/02_bonus_efficient-multihead-attention/benchmark.py")
    names = ("SDPA (PyTorch picks kernel)", "FlexAttention")
    report = benchmark.run_benchmark(batch_size=1, num_tokens=8, emb_dim=16, num_heads=2,
                                     warmup=0, repeats=1, device="cpu", names=names)
    results = report["results"]
    assert len(results["forward"]["SDPA (PyTorch picks kernel)"]) == 1
    assert len(results["forward+backward"]["SDPA (PyTorch picks kernel)"]) == 1
    flex_backward = results["forward+backward"].get("FlexAttention")
    if "FlexAttention" not in report["skipped"]:
        assert isinstance(flex_backward, str) and "backward" in flex_backward
    assert "FlexAttention" in benchmark.format_table(report)


def test_saved_checkpoints_get_the_mode_a_plain_open_gives(tmp_path):
    """The atomic save goes through a private (0600) temp file; the finished
    checkpoint must be readable like any file the user writes."""
    utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")
    umask = os.umask(0o022)
    os.umask(umask)
    (tmp_path / "plain.txt").write_text("x")

    utils.save_checkpoint(tmp_path / "model.pth", torch.nn.Linear(2, 2))

    mode = (tmp_path / "model.pth").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth", "plain.txt"]
