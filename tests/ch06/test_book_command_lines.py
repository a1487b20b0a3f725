"""The chapter 6 bonus scripts take the book repository's README command lines as pasted.

Each line goes through the script's own `parse_args` after `shlex.split`, as a
shell would pass it. Also here: the merged-weight LoRA variant those lines
select (`--trainable_layers lora_alternative`) and `--compile`.
"""

import shlex

import pytest
import torch
from support.course_imports import import_course_module

IMDB = "ch06/03_bonus_imdb-classification"
EXPERIMENTS = "ch06/02_bonus_additional-experiments/additional_experiments.py"
prev = import_course_module("ch06/02_bonus_additional-experiments/previous_chapters.py")
BOOK_SIZES = {"gpt2-small (124M)": "124M", "gpt2-medium (355M)": "355M",
              "gpt2-large (774M)": "774M", "gpt2-xl (1558M)": "1558M"}


def pasted(line):
    """The arguments of a README line `python script.py ...`."""
    return shlex.split(line)[2:]


@pytest.mark.parametrize("book_name, size", BOOK_SIZES.items())
def test_experiments_take_the_books_model_size_spelling(experiments, book_name, size, tmp_path):
    line = (f'python additional_experiments.py --model_size "{book_name}" '
            f"--results_csv {tmp_path / 'r.csv'}")
    assert experiments.parse_args(pasted(line))["model_size"] == size
    # ours still works, and a wrong size is still refused
    assert experiments.parse_args(["--model-size", size])["model_size"] == size
    with pytest.raises(SystemExit):
        experiments.parse_args(["--model-size", "gpt2-huge (9B)"])


def test_train_gpt_takes_the_books_lines(imdb_data_dir, tmp_path):
    train_gpt = import_course_module(f"{IMDB}/train_gpt.py")
    data = f"--data_dir {imdb_data_dir} --results_csv {tmp_path / 'r.csv'}"
    settings, _ = train_gpt.parse_args(pasted(
        f'python train_gpt.py --model_size "gpt2-medium (355M)" --trainable_layers '
        f'"lora_alternative" --lora_rank 16 --lora_alpha 16 {data}'))
    assert (settings["model_size"], settings["trainable_layers"], settings["lora_rank"]) == (
        "355M", "lora_alternative", 16)
    settings, _ = train_gpt.parse_args(pasted(
        f'python train_gpt.py --trainable_layers "all" --num_epochs 1 --compile {data} '
        "--device cpu"))
    assert (settings["compile"] and settings["trainable_layers"] == "all"
            and settings["num_epochs"] == 1)
    settings, _ = train_gpt.parse_args(pasted(f"python train_gpt.py {data}"))
    assert not settings["compile"]


@pytest.mark.parametrize("model, hub_name", [
    ("bert", "bert-base-uncased"), ("deberta-v3-base", "microsoft/deberta-v3-base"),
    ("modernbert-base", "answerdotai/ModernBERT-base"),
    ("modernbert-large", "answerdotai/ModernBERT-large"),
    ("distilbert", "distilbert-base-uncased"),  # ours, beside the book's
])
def test_train_bert_hf_takes_the_books_model_shortcuts(imdb_data_dir, model, hub_name):
    bert = import_course_module(f"{IMDB}/train_bert_hf.py")
    settings, _ = bert.parse_args(pasted(
        f'python train_bert_hf.py --trainable_layers "all" --num_epochs 1 --model "{model}" '
        f"--data_dir {imdb_data_dir}"))
    assert bert.HUB_MODELS[settings["model"]] == hub_name
    assert settings["learning_rate"] == 5e-6  # the book's default
    assert (settings["trainable_layers"], settings["num_epochs"]) == ("all", 1)


def test_lora_merged_layer_equals_lora_layer():
    torch.manual_seed(123)
    layer = prev.LinearWithLoRA(torch.nn.Linear(24, 12), rank=4, alpha=8)
    torch.nn.init.normal_(layer.lora.B)  # as if training had moved B away from zero
    merged = prev.LinearWithLoRAMerged(torch.nn.Linear(24, 12), rank=4, alpha=8)
    merged.load_state_dict(layer.state_dict())
    x = torch.randn(3, 5, 24)
    torch.testing.assert_close(merged(x), layer(x), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(layer(x), layer.linear(x))  # the update is really there

    # the gradients reach the same parameters with the same values
    layer(x).square().sum().backward()
    merged(x).square().sum().backward()
    for (name, p), (_, q) in zip(layer.named_parameters(), merged.named_parameters(),
                                 strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_lora_alternative_trains_what_lora_trains(experiments):
    def configured(choice):
        torch.manual_seed(0)
        model = experiments.GPTModel({**experiments.EXPERIMENT_TEST_CONFIG, "vocab_size": 100,
                                      "context_length": 16})
        return experiments.configure_trainable_layers(model, choice, lora_rank=2, lora_alpha=4)

    lora, alternative = configured("lora"), configured("lora_alternative")
    def count(model, class_name):  # by name: the script imports its own previous_chapters
        return sum(type(m).__name__ == class_name for m in model.modules())

    assert count(alternative, "LinearWithLoRAMerged") == count(lora, "LinearWithLoRA") > 0
    assert ([n for n, p in lora.named_parameters() if p.requires_grad]
            == [n for n, p in alternative.named_parameters() if p.requires_grad])
    with torch.no_grad():
        for module in (*lora.modules(), *alternative.modules()):
            if type(module).__name__ == "LoRALayer":
                torch.manual_seed(1)
                torch.nn.init.normal_(module.B, std=0.1)
        idx = torch.randint(0, 100, (2, 16))
        torch.testing.assert_close(alternative(idx), lora(idx), rtol=1e-4, atol=1e-5)


def test_compile_without_a_cpp_compiler_is_one_line(imdb_data_dir, monkeypatch, capsys):
    import torch._inductor.config as inductor_config

    # inductor looks only for the compilers its config names: name one that is nowhere
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-c++-compiler",))
    train_gpt = import_course_module(f"{IMDB}/train_gpt.py")
    with pytest.raises(SystemExit) as exit_info:
        train_gpt.parse_args(["--compile", "--device", "cpu", "--data-dir", str(imdb_data_dir)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert "--compile" in lines[-1] and "C++ compiler" in lines[-1]


def test_compile_compiles_the_model_it_trains(imdb_data_dir, tmp_path, monkeypatch, capsys):
    compiled = []

    def spy_compile(model):  # torch.compile itself takes minutes on a CPU
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", spy_compile)
    train_gpt = import_course_module(f"{IMDB}/train_gpt.py")
    train_gpt.run_from_command_line([
        "--test-mode", "--weights", "random", "--compile", "--max-examples", "4",
        "--batch-size", "4", "--eval-iter", "1", "--data-dir", str(imdb_data_dir),
        "--results-csv", str(tmp_path / "r.csv"), "--device", "cpu"])
    assert len(compiled) == 1 and isinstance(compiled[0], train_gpt.run_experiment.__globals__[
        "GPTModel"])
    assert "Test accuracy:" in capsys.readouterr().out
