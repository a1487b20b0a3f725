"""gpt_instruction_finetuning.py and exercise_experiments.py, run in-process."""

import json

import pytest
import torch

ALPACA_ENTRIES = [{"instruction": f"Add {i} and {i}.", "input": "", "output": str(2 * i)}
                  for i in range(40)]


def one_line_error(capsys, call):
    with pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_end_to_end_from_an_openai_format_checkpoint(ch07, previous, course_mirror,
                                                     tmp_path, monkeypatch, capsys):
    """Finetune a (small) checkpoint in OpenAI's layout served from the mirror."""
    monkeypatch.setenv("LLMS_FROM_SCRATCH_MIRROR", str(course_mirror(["355M-small"])))
    out = tmp_path / "out"
    train_losses, val_losses, answered = ch07.run_from_command_line([
        "--model-size", "355M", "--models-dir", str(tmp_path / "gpt2"),
        "--data-dir", str(tmp_path), "--output-dir", str(out), "--epochs", "1",
        "--max-train-entries", "16", "--max-test-entries", "2", "--max-new-tokens", "3",
        "--eval-freq", "1", "--eval-iter", "1", "--lr", "1e-3", "--device", "cpu",
    ])
    assert len(train_losses) == 2 and train_losses[-1] < train_losses[0]
    saved = json.loads((out / "instruction-data-with-response.json").read_text())
    assert [entry["instruction"] for entry in saved] == [e["instruction"] for e in answered]
    assert len(saved) == 2 and all(isinstance(e["model_response"], str) for e in saved)
    config = previous.read_checkpoint_config(out / "gpt2-medium355M-sft.pth")
    assert config["emb_dim"] == 64 and config["n_layers"] == 2  # the stand-in's hparams
    model = previous.GPTModel(config)
    previous.load_checkpoint(out / "gpt2-medium355M-sft.pth", model)
    assert (out / "loss-plot.pdf").stat().st_size > 0
    assert "Before finetuning" in capsys.readouterr().out


def test_existing_outputs_are_not_overwritten(ch07, tmp_path, capsys):
    (tmp_path / "instruction-data-with-response.json").write_text("mine")
    err = one_line_error(capsys, lambda: ch07.parse_args(
        ["--test-mode", "--output-dir", str(tmp_path)]))
    assert "--output-dir" in err and "--overwrite" in err
    assert (tmp_path / "instruction-data-with-response.json").read_text() == "mine"


def test_book_spellings_are_accepted(ch07, exercises, tmp_path):
    settings = ch07.parse_args(["--test_mode", "--output_dir", str(tmp_path), "--batch_size", "2"])
    assert settings["test_mode"] and settings["batch_size"] == 2
    assert settings["output_dir"] == tmp_path
    settings = exercises.parse_args(["--exercise_solution", "lora", "--output-dir", str(tmp_path)])
    assert settings["exercise_solution"] == "lora"


def test_lora_exercise_trains_only_lora_parameters(exercises, previous, tmp_path, capsys):
    exercises.run_from_command_line(["--exercise-solution", "lora", "--test-mode", "--epochs",
                                     "1", "--max-test-entries", "1", "--data-dir", str(tmp_path),
                                     "--output-dir", str(tmp_path)])
    assert "Trainable parameters with LoRA" in capsys.readouterr().out
    path = tmp_path / "test-model-sft-lora.pth"
    state = torch.load(path, weights_only=True)["model_state_dict"]
    assert any(".lora.A" in name for name in state)
    assert (tmp_path / "instruction-data-with-response-lora.json").exists()


def test_alpaca_exercise_reads_the_dataset_through_the_mirror(exercises, tmp_path, monkeypatch,
                                                              capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "alpaca_data.json").write_text(json.dumps(ALPACA_ENTRIES))
    monkeypatch.setenv("LLMS_FROM_SCRATCH_MIRROR", str(mirror))
    settings = exercises.parse_args(["--exercise-solution", "alpaca_52k", "--output-dir",
                                     str(tmp_path)])
    assert settings["batch_size"] == 4  # the book's solution
    exercises.run_from_command_line([
        "--exercise-solution", "alpaca_52k", "--test-mode", "--epochs", "1",
        "--max-test-entries", "1", "--data-dir", str(tmp_path),
        "--output-dir", str(tmp_path / "out")])
    assert "40 entries: 8 for training" in capsys.readouterr().out
    answered = json.loads((tmp_path / "out" / "instruction-data-with-response-alpaca-52k.json")
                          .read_text())
    assert answered[0]["instruction"] == ALPACA_ENTRIES[34]["instruction"]  # first test entry


def test_phi3_prompt_style(exercises, tokenizer):
    entry = {"instruction": "Name a color.", "input": "Sky", "output": "Blue"}
    assert exercises.format_input_phi(entry) == "<|user|>\nName a color.\nSky"
    assert exercises.format_input_phi({**entry, "input": ""}) == "<|user|>\nName a color."
    ids = exercises.InstructionDatasetPhi([entry], tokenizer)[0]
    assert tokenizer.decode(ids) == "<|user|>\nName a color.\nSky\n<|assistant|>:\nBlue"
    prompt = exercises.format_input_phi(entry)
    assert exercises.extract_response_phi(prompt + "\n<|assistant|>:\nBlue", prompt) == "Blue"


def test_instruction_masking(exercises, ch07, tokenizer):
    batch = ((3, [0, 1, 2, 3, 4]), (1, [5, 6]), (2, [7, 8, 9]))
    inputs, targets = exercises.custom_collate_with_masking(batch)
    assert torch.equal(inputs, ch07.custom_collate_fn([item for _, item in batch])[0])
    assert torch.equal(targets, torch.tensor(
        [[-100, -100, 3, 4, 50256], [6, 50256, -100, -100, -100], [-100, 9, 50256, -100, -100]]))
    entry = {"instruction": "Name a color.", "input": "", "output": "Blue"}
    prompt_length, ids = exercises.InstructionDatasetWithMasking([entry], tokenizer)[0]
    assert prompt_length == len(tokenizer.encode(ch07.format_input(entry)))
    assert tokenizer.decode(ids[prompt_length:]) == "\n\n### Response:\nBlue"


def test_lora_parameter_counts_of_gpt2_355m(exercises, previous):
    config = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 1024, "n_heads": 16,
              "n_layers": 24, "drop_rate": 0.0, "qkv_bias": True}
    with torch.device("meta"):
        model = previous.GPTModel(config)
    assert sum(p.numel() for p in model.parameters()) == 406_286_336
    exercises.freeze_and_add_lora(model, rank=16, alpha=16)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 7_898_384
    assert sum(p.numel() for p in model.parameters()) == 406_286_336 + 7_898_384


def test_baseline_exercise_is_the_chapters_run(ch07, exercises, tmp_path, monkeypatch):
    """No --exercise-solution (or `baseline`, as in the book) is the chapter's run, unchanged.

    Both scripts hand their work to the same `run`; the baseline passes it the same
    settings and data and changes nothing but the output names (`...-baseline...`).
    """
    calls = []
    monkeypatch.setattr(exercises, "run", lambda settings, data, **options: calls.append(
        (settings, data, options)))
    argv = ["--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]
    exercises.run_from_command_line(argv)
    exercises.run_from_command_line(["--exercise_solution", "baseline", *argv])
    chapter_settings = ch07.parse_args(argv)
    for settings, data, options in calls:
        assert options == {"suffix": "baseline"}  # no dataset, prompt or model change
        assert {key: value for key, value in settings.items() if key in chapter_settings} \
            == chapter_settings
        assert len(data) == 1100 and data[0] == json.loads(
            (tmp_path / "instruction-data.json").read_text())[0]
    assert ch07.output_files(calls[0][0]["model_size"], calls[0][0]["test_mode"],
                             "baseline") == [
        "gpt2-medium355M-sft-baseline.pth", "instruction-data-with-response-baseline.json",
        "loss-plot-baseline.pdf"]
