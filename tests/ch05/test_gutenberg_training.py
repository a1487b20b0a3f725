"""pretraining_simple.py: flags, resume equality, and torchrun with 2 gloo processes."""

import json
import os
import random
import re
import subprocess
import sys
import time
from datetime import datetime

import pytest
import torch
from support.course_imports import REPO_ROOT, import_course_module

FOLDER = REPO_ROOT / "ch05" / "03_bonus_pretraining_on_gutenberg"
SCRIPT = FOLDER / "pretraining_simple.py"
WORDS = ("the of and a to in is was he it with for as his on be at by had not but from "
         "they she which you this were her all there would their we him been has when who "
         "will more no if out so said what up its about into than them can only other new "
         "some could time these two may then do first any my now such like our over man "
         "me even most made after also did many before must through back years where much "
         "your way well down should because each just those people how too little state "
         "good very make world still own see men work long get here between both life").split()
# The tiny --debug model, 10-token windows, global batches of 4 windows.
TINY = ["--debug", "--batch-size", "4", "--eval-iter", "1", "--print-sample-iter", "1000",
        "--val-fraction", "0.2", "--no-progress", "--device", "cpu"]
# Steps 0-3 with evaluations and checkpoints; the torchrun job then loses rank 1.
DISTRIBUTED = ["--eval-freq", "2", "--save-ckpt-freq", "2"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """About 300 tokens of seeded English-like text: 6 training batches an epoch."""
    prepare = import_course_module("ch05/03_bonus_pretraining_on_gutenberg/prepare_dataset.py")
    books = tmp_path_factory.mktemp("books")
    rng = random.Random(0)
    for number in range(2):
        words = [rng.choice(WORDS) for _ in range(150)]
        (books / f"book{number}.txt").write_text(" ".join(words) + ".\n")
    output = tmp_path_factory.mktemp("shards")
    index = prepare.tokenize_to_shards(books, output, shard_tokens=120, progress=False)
    assert len(index["shards"]) >= 3  # windows cross shard boundaries
    return output


@pytest.fixture(scope="module")
def training():
    return import_course_module("ch05/03_bonus_pretraining_on_gutenberg/pretraining_simple.py")


def read_log(output_dir):
    return [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]


def step_losses(records):
    return {record["step"]: record["loss"] for record in records if "loss" in record}


@pytest.fixture(scope="module")
def torchrun_job(shards, tmp_path_factory):
    """`torchrun --nproc_per_node 2` on CPU (gloo): 4 steps, then rank 1 raises.

    One short job checks both things: the losses logged (and checkpointed) up
    to the failure, and that the failure ends the job.
    """
    output_dir = tmp_path_factory.mktemp("torchrun") / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(SCRIPT), "--data-dir", str(shards),
               "--output-dir", str(output_dir), *TINY, *DISTRIBUTED, "--n-epochs", "2",
               "--fail-rank", "1", "--fail-step", "4", "--dist-timeout", "600"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    return output_dir, result, time.time()


def test_book_repository_flag_spellings_are_accepted(training, shards, tmp_path):
    _, settings = training.parse_args([
        "--data_dir", str(shards), "--output_dir", str(tmp_path / "out"), "--n_epochs", "3",
        "--print_sample_iter", "7", "--eval_freq", "5", "--save_ckpt_freq", "9", "--lr", "1e-3",
        "--batch_size", "2", "--debug"])
    assert tuple(settings[key] for key in (
        "n_epochs", "print_sample_iter", "eval_freq", "save_ckpt_freq", "lr", "batch_size",
        "debug")) == (3, 7, 5, 9, 1e-3, 2, True)
    assert settings["data_dir"] == str(shards)


# (tests/test_bad_input.py has the cases that need no shards)
@pytest.mark.parametrize("flags, named", [
    (["--batch-size", "400"], "--data-dir"),  # too few windows for such batches
    (["--resume"], "--resume"),
])
def test_bad_arguments_exit_2_naming_the_argument(training, shards, tmp_path, capsys,
                                                  flags, named):
    with pytest.raises(SystemExit) as exit_info:
        training.parse_args(["--data-dir", str(shards), "--output-dir", str(tmp_path), "--debug",
                             "--val-fraction", "0.2", *flags])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and named in error


def test_resume_continues_with_the_same_losses(training, shards, tmp_path,
                                              single_thread_torch):
    """Dropout on, an interruption inside epoch 1, the rest crossing into epoch 2."""
    common = ["--data-dir", str(shards), *TINY, "--drop-rate", "0.1", "--n-epochs", "2",
              "--eval-freq", "100", "--max-steps", "7"]
    training.main([*common, "--output-dir", str(tmp_path / "whole")])
    training.main([*common, "--output-dir", str(tmp_path / "pieces"), "--max-steps", "3"])
    assert sorted(p.name for p in (tmp_path / "pieces").glob("*.pth")) == ["model_pg_2.pth"]
    training.main([*common, "--output-dir", str(tmp_path / "pieces"), "--resume"])

    whole, pieces = (step_losses(read_log(tmp_path / name)) for name in ("whole", "pieces"))
    assert sorted(whole) == list(range(7))
    assert pieces == whole  # exactly: same data position, optimizer state and dropout RNG
    final = [torch.load(tmp_path / name / "model_pg_6.pth", weights_only=True)
             for name in ("whole", "pieces")]
    assert final[0]["position"] == final[1]["position"] == {
        "epoch": 1, "batch": 1, "step": 6, "tokens_seen": 7 * 4 * 10}
    for name, tensor in final[0]["model_state_dict"].items():
        assert torch.equal(tensor, final[1]["model_state_dict"][name]), name


def test_two_gloo_processes_give_the_losses_of_one(training, shards, torchrun_job, tmp_path,
                                                   single_thread_torch):
    output_dir, result, _ = torchrun_job
    assert "2 process(es) on cpu" in result.stdout, result.stdout + result.stderr[-3000:]
    training.main(["--data-dir", str(shards), "--output-dir", str(tmp_path / "one"), *TINY,
                   *DISTRIBUTED, "--max-steps", "4"])

    one, two = read_log(tmp_path / "one"), read_log(output_dir)
    assert len(step_losses(one)) == 4 and sum("val_loss" in record for record in one) == 2
    assert [sorted(record) for record in two] == [sorted(record) for record in one]
    for record_one, record_two in zip(one, two, strict=True):
        for key, value in record_one.items():
            assert record_two[key] == pytest.approx(value, rel=1e-5), (key, record_one)

    # rank 0's checkpoint holds both ranks' RNG states and the weights of the 1-process run
    one_ckpt, two_ckpt = (torch.load(path / "model_pg_3.pth", weights_only=True)
                          for path in (tmp_path / "one", output_dir))
    assert len(two_ckpt["rng_states"]) == 2
    for name, tensor in one_ckpt["model_state_dict"].items():
        torch.testing.assert_close(two_ckpt["model_state_dict"][name], tensor,
                                   rtol=1e-4, atol=1e-6)


def test_a_failing_rank_ends_the_whole_job_within_seconds(torchrun_job):
    _, result, ended = torchrun_job
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "rank 1: simulated failure (--fail-rank)" in output
    root_cause = output.split("Root Cause")[1]
    assert re.search(r"rank\s*: 1 \(local_rank: 1\)", root_cause)
    # torchrun notices the dead rank and stops rank 0 (waiting for its peer in the
    # gradient all-reduce) long before the 600 s --dist-timeout would
    failed_at = datetime.strptime(re.search(r"time\s*: (\S+)", root_cause).group(1),
                                  "%Y-%m-%d_%H:%M:%S").timestamp()
    assert ended - failed_at < 30
