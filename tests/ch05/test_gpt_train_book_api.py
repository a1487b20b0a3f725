"""gpt_train.py as the book uses it, and the runs it must never lose.

The book calls `main(GPT_CONFIG, OTHER_SETTINGS)` from Python and gets
`train_losses, val_losses, tokens_seen, model` back. The command line must
check everything before training, save the model before the plot, and leave
a user's files alone. Everything runs in-process on a tiny model.
"""

import math

import pytest
import torch
from support.course_imports import REPO_ROOT, import_course_module
from support.helpers import tiny_gpt_config

gpt_train = import_course_module("ch05/01_main-chapter-code/gpt_train.py")
gpt_utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")
pc = import_course_module("ch05/01_main-chapter-code/previous_chapters.py")

FALLBACK = (REPO_ROOT / "ch05" / "01_main-chapter-code" / "fallback-text.txt").read_text(
    encoding="utf-8")
TINY_CLI = ["--model-config", "tiny", "--epochs", "1", "--context-length", "32",
            "--batch-size", "8", "--eval-freq", "2", "--eval-iter", "1", "--device", "cpu"]


@pytest.mark.slow
def test_main_called_as_the_book_calls_it(capsys):
    GPT_CONFIG = tiny_gpt_config(context_length=64, n_heads=2, drop_rate=0.1)  # noqa: N806
    OTHER_SETTINGS = {  # noqa: N806
        "learning_rate": 5e-4, "num_epochs": 1, "batch_size": 16, "weight_decay": 0.1,
    }
    train_losses, val_losses, tokens_seen, model = gpt_train.main(GPT_CONFIG, OTHER_SETTINGS)

    out, err = capsys.readouterr()
    train_batches = int(out.split(" training batches")[0].rsplit("\n", 1)[-1])
    steps = train_batches  # one epoch
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == math.ceil(steps / 5)
    assert tokens_seen == [(step + 1) * 16 * 64 for step in range(0, steps, 5)]
    # an untrained model guesses among 50,257 tokens: loss near ln(50257) = 10.8
    assert all(10 < loss < 11.5 for loss in train_losses + val_losses)
    assert isinstance(model, gpt_train.GPTModel)
    assert model.pos_emb.weight.shape == (64, 32)
    first = out.splitlines()[[i for i, line in enumerate(out.splitlines())
                              if line.startswith("Ep ")][0]]
    assert first == (f"Ep 1 (Step 000000): Train loss {train_losses[0]:.3f}, "
                     f"Val loss {val_losses[0]:.3f}")
    assert "tok/s" in err and "Train loss" not in err  # the bar on stderr, losses on stdout


def test_settings_are_checked_before_training():
    config = {**gpt_train.MODEL_CONFIGS["tiny"], "context_length": 32}
    book = {"learning_rate": 5e-4, "num_epochs": 1, "batch_size": 2, "weight_decay": 0.1}
    for key, value in (("num_epochs", 0), ("batch_size", 0), ("learning_rate", -1.0)):
        with pytest.raises(gpt_train.SettingError, match=key):
            gpt_train.main(config, {**book, key: value})
    with pytest.raises(gpt_train.SettingError, match="weight_decay"):
        gpt_train.main(config, {k: v for k, v in book.items() if k != "weight_decay"})


def run_cli(args, capsys):
    """gpt_train.py's command line, in-process; returns (exit code or None, stdout, stderr)."""
    try:
        gpt_train.run_from_command_line(args)
        code = None
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_unwritable_output_folder_stops_before_training_and_writes_nothing(tmp_path, capsys):
    # A path below a file can never be a folder, even for root (who ignores chmod).
    (tmp_path / "a-file").write_text("x")
    story = tmp_path / "story.txt"
    story.write_text(FALLBACK, encoding="utf-8")
    code, out, err = run_cli([*TINY_CLI, "--text-file", str(story), "--data-dir",
                              str(tmp_path / "data"), "--output-dir",
                              str(tmp_path / "a-file" / "out")], capsys)
    assert code == 2
    assert "error: argument --output-dir: cannot write" in err and len(err.splitlines()) == 1
    assert "Ep 1" not in out and "Training text" not in out  # stopped before the data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "story.txt"]


def test_a_text_too_short_gets_the_clear_message(tmp_path, capsys):
    story = tmp_path / "story.txt"
    story.write_text(FALLBACK[:600], encoding="utf-8")
    code, _, err = run_cli([*TINY_CLI, "--text-file", str(story),
                            "--output-dir", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "argument --context-length: story.txt is too short" in err
    assert "num_samples" not in err
    assert not (tmp_path / "out").exists()


def test_a_users_the_verdict_txt_is_never_replaced(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "the-verdict.txt").write_text("My own story.", encoding="utf-8")
    code, _, err = run_cli([*TINY_CLI, "--data-dir", str(data),
                            "--output-dir", str(tmp_path / "out")], capsys)
    assert code == 2 and "argument --data-dir" in err and "--text-file" in err
    assert (data / "the-verdict.txt").read_text(encoding="utf-8") == "My own story."


@pytest.mark.slow
def test_the_model_is_saved_before_the_plot_can_fail(tmp_path, capsys):
    story = tmp_path / "story.txt"
    story.write_text(FALLBACK[:3000], encoding="utf-8")  # two training batches
    out_dir = tmp_path / "out"
    (out_dir / "loss-plot.pdf").mkdir(parents=True)  # the plot cannot be written there
    code, out, err = run_cli([*TINY_CLI, "--text-file", str(story),
                              "--output-dir", str(out_dir)], capsys)
    assert "Train loss" in out  # it trained
    assert code is not None and code != 0
    assert "could not save the loss plot" in str(code) and "model is saved" in str(code)
    checkpoint = torch.load(out_dir / "model.pth", weights_only=True)
    model = pc.GPTModel(checkpoint["config"])
    gpt_utils.load_checkpoint(out_dir / "model.pth", model)
    assert [p.name for p in out_dir.iterdir() if p.name.endswith(".part")] == []
