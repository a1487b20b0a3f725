"""gpt_class_finetune.py: --help, a test-mode run, OpenAI's format end to end, bad input."""

import os
import re
import zipfile

import pytest
import torch
from support.openai_gpt2 import OPENAI_HPARAMS, random_openai_weights

# GPT-2's vocabulary and context with a 32-dimensional, 2-layer model: quick to train
SMALL_OVERRIDE = {"n_embd": 32, "n_head": 2, "n_layer": 2}


SMS_ZIP = "sms+spam+collection.zip"


def accuracies(stdout):
    """The final accuracies, in percent, as the script prints them."""
    return {name: float(value) for name, value in
            re.findall(r"^(Training|Validation|Test) accuracy: ([\d.]+)%$", stdout, re.M)}


def no_temporary_files(*folders):
    return not [p for folder in folders if folder.exists() for p in folder.rglob("*.part")]


def test_help_lists_hyphenated_options_only(ch06, capsys):
    with pytest.raises(SystemExit) as info:
        ch06.run_from_command_line(["--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--model-size", "--epochs", "--lr", "--batch-size", "--seed", "--device",
                   "--output-dir", "--test-mode", "--context-length", "--trainable-layers",
                   "--trainable-token-pos"):
        assert option in help_text
    assert "--test_mode" not in help_text  # the book's spelling works but is not listed


@pytest.mark.needs_mirror(SMS_ZIP)
def test_test_mode_runs_end_to_end(tmp_path, ch06, previous_chapters, tokenizer, capsys):
    out = tmp_path / "out"
    # the book repository's spellings of the options work too
    ch06.run_from_command_line(["--test_mode", "--epochs", "2", "--eval_freq", "1",
                                "--eval_iter", "1", "--device", "cpu", "--output_dir", str(out),
                                "--data-dir", str(tmp_path / "data")])
    stdout = capsys.readouterr().out
    assert "Messages padded to 120 tokens" in stdout
    assert "2 training, 2 validation and 2 test batches" in stdout  # 16 examples each
    assert stdout.count("Validation accuracy:") == 3  # after each epoch, and at the end
    assert set(accuracies(stdout)) == {"Training", "Validation", "Test"}
    assert all(0 <= value <= 100 for value in accuracies(stdout).values())
    assert len(re.findall(r"^Ep \d \(Step \d{6}\)", stdout, re.M)) == 4  # every step
    for name in ("review_classifier.pth", "loss-plot.pdf", "accuracy-plot.pdf"):
        assert (out / name).stat().st_size > 0
    assert no_temporary_files(out, tmp_path / "data")

    config = previous_chapters.read_checkpoint_config(out / "review_classifier.pth")
    assert (config["emb_dim"], config["num_classes"], config["max_length"]) == (32, 2, 120)


@pytest.mark.needs_mirror(SMS_ZIP)
def test_finetunes_openai_gpt2_and_saves_a_reloadable_model(
        tmp_path, monkeypatch, capsys, course_mirror, ch06, previous_chapters, tokenizer):
    """A "124M" release in OpenAI's exact format, with small random weights.

    The same (cached) checkpoint the notebook tests use: seeded random weights,
    which `random_openai_weights` recreates here as the reference.
    """
    mirror = course_mirror(["124M"], SMALL_OVERRIDE)
    monkeypatch.setenv("LLMS_FROM_SCRATCH_MIRROR", str(mirror))
    out = tmp_path / "out"
    ch06.run_from_command_line([
        "--model-size", "124M", "--epochs", "1", "--batch-size", "64", "--eval-freq", "8",
        "--eval-iter", "1", "--device", "cpu", "--output-dir", str(out),
        "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "gpt2")])
    stdout = capsys.readouterr().out
    # the last block, the final norm and the head of a 32-dimensional GPT-2
    assert "Trainable parameters: 12,834" in stdout
    assert "16 training, 3 validation and 5 test batches" in stdout
    assert all(0 <= value <= 100 for value in accuracies(stdout).values())
    assert len(accuracies(stdout)) == 3

    path = out / "review_classifier.pth"
    config = previous_chapters.read_checkpoint_config(path)
    model = previous_chapters.GPTModel(config)
    model.out_head = torch.nn.Linear(config["emb_dim"], config["num_classes"])
    previous_chapters.load_checkpoint(path, model)
    # frozen layers still hold the weights read from OpenAI's format
    weights = random_openai_weights({**OPENAI_HPARAMS["124M"], **SMALL_OVERRIDE}, seed=0)
    torch.testing.assert_close(model.tok_emb.weight, torch.from_numpy(weights["model/wte"]),
                               rtol=0, atol=0)
    torch.testing.assert_close(model.trf_blocks[0].ff.layers[0].weight,
                               torch.from_numpy(weights["model/h0/mlp/c_fc/w"][0]).T,
                               rtol=0, atol=0)
    # the finetuned head differs from its seeded start
    torch.manual_seed(123)
    assert not torch.equal(model.out_head.weight, torch.nn.Linear(32, 2).weight)

    label = ch06.classify_review("Claim your free prize now!", model, tokenizer, "cpu",
                                 max_length=config["max_length"])
    assert label in ("spam", "not spam")


def run_expecting_exit_2(ch06, capsys, argv):
    with pytest.raises(SystemExit) as info:
        ch06.run_from_command_line(argv)
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()


def test_corrupt_zip_gives_one_line_and_leaves_nothing_behind(tmp_path, ch06, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "sms_spam_collection.zip").write_bytes(b"PK\x03\x04 cut off" * 10)
    lines = run_expecting_exit_2(ch06, capsys, ["--test-mode", "--data-dir", str(data),
                                                "--output-dir", str(out)])
    assert len(lines) == 1
    assert "sms_spam_collection.zip is not a usable zip file" in lines[0]
    assert sorted(p.name for p in data.iterdir()) == ["sms_spam_collection.zip"]
    assert list(out.iterdir()) == []


@pytest.mark.needs_mirror(SMS_ZIP)
def test_truncated_zip_is_reported_the_same_way(tmp_path, ch06, capsys):
    data = tmp_path / "data"
    data.mkdir()
    real = os.path.join(os.environ["LLMS_FROM_SCRATCH_MIRROR"], SMS_ZIP)
    with open(real, "rb") as f:
        whole = f.read()
    assert zipfile.is_zipfile(real)
    (data / "sms_spam_collection.zip").write_bytes(whole[: len(whole) // 3])
    lines = run_expecting_exit_2(ch06, capsys, ["--test-mode", "--data-dir", str(data),
                                                "--output-dir", str(tmp_path / "out")])
    assert len(lines) == 1 and "not a usable zip file" in lines[0]
    assert sorted(p.name for p in data.iterdir()) == ["sms_spam_collection.zip"]
