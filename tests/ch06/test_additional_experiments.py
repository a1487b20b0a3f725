"""additional_experiments.py: each option changes what it says, on a tiny random GPT."""

import csv
import re

import pytest
import torch

SMALL_RUN = ["--test-mode", "--weights", "random", "--num-epochs", "1", "--eval-freq", "1",
             "--eval-iter", "1", "--max-examples", "8", "--batch-size", "4", "--device", "cpu"]


def tiny_gpt(experiments):
    """The test-mode GPT with a 100-token vocabulary and context: the same layers, faster."""
    torch.manual_seed(0)
    return experiments.GPTModel({**experiments.EXPERIMENT_TEST_CONFIG, "vocab_size": 100,
                                 "context_length": 100})


def trainable_names(model):
    return {name for name, param in model.named_parameters() if param.requires_grad}


@pytest.mark.parametrize("choice", ["last_layer", "last_block", "last_two_blocks", "all"])
def test_trainable_layers_leave_exactly_those_parameters_trainable(experiments, choice):
    model = experiments.configure_trainable_layers(tiny_gpt(experiments), choice)
    everything = {name for name, _ in model.named_parameters()}
    head = {"out_head.weight", "out_head.bias"}
    norm = {"final_norm.scale", "final_norm.shift"}
    block = {n: {name for name in everything if name.startswith(f"trf_blocks.{n}.")}
             for n in range(3)}
    expected = {"last_layer": head, "last_block": head | norm | block[2],
                "last_two_blocks": head | norm | block[1] | block[2], "all": everything}[choice]
    assert trainable_names(model) == expected
    assert model.out_head.out_features == 2


def test_lora_trains_only_the_low_rank_updates_and_starts_as_the_frozen_model(experiments):
    model = tiny_gpt(experiments)
    reference = experiments.configure_trainable_layers(tiny_gpt(experiments), "all")
    experiments.configure_trainable_layers(model, "lora", lora_rank=4, lora_alpha=8)
    trainable = trainable_names(model)
    # every nn.Linear got A and B: 6 per block (query, key, value, out, 2 feed-forward) + head
    assert len(trainable) == 2 * (6 * 3 + 1)
    assert all(re.search(r"\.lora\.[AB]$", name) for name in trainable)
    assert model.out_head.lora.A.shape == (32, 4)
    ids = torch.randint(0, 100, (2, 7))
    with torch.no_grad():  # B starts at zero: the same outputs as without LoRA
        torch.testing.assert_close(model(ids), reference(ids))


def test_token_positions_read_the_right_logits(experiments):
    class Echo(torch.nn.Module):  # "logits" = the input ids themselves, as floats
        def forward(self, ids):
            return torch.stack([ids.float(), -ids.float()], dim=-1)

    ids = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 9]])
    num_tokens = torch.tensor([3, 5])
    logits = {pos: experiments.class_logits(Echo(), ids, num_tokens, pos)[:, 0].tolist()
              for pos in ("first", "last", "flexible")}
    assert logits == {"first": [5, 1], "last": [0, 9], "flexible": [7, 9]}
    averaged = experiments.class_logits(Echo(), ids, num_tokens, "last", average_embeddings=True)
    # over the real tokens only
    torch.testing.assert_close(averaged[:, 0], torch.tensor([6.0, 19 / 5]))


def test_disable_causal_mask_lets_later_tokens_change_earlier_outputs(experiments):
    model = tiny_gpt(experiments).eval()
    ids = torch.randint(0, 100, (1, 6))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 100
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[:, :-1], model(changed)[:, :-1])  # causal
        experiments.disable_causal_mask(model)
        first, second = model(ids), model(changed)
    assert not torch.allclose(first[:, 0], second[:, 0], atol=1e-6)


def test_accumulated_small_batches_make_the_same_step_as_one_large_batch(experiments):
    ids = torch.randint(0, 100, (2, 5))
    batch = (ids, torch.tensor([0, 1]), torch.tensor([5, 5]))
    models = []
    for loader, steps in (([tuple(t[:1] for t in batch), tuple(t[1:] for t in batch)], 2),
                          ([batch], 1)):
        model = experiments.configure_trainable_layers(tiny_gpt(experiments), "last_block")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        experiments.train_experiment(model, loader, loader, optimizer, "cpu", num_epochs=1,
                                     eval_freq=1000, eval_iter=1, accumulation_steps=steps)
        models.append(model)
    for (name, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters(),
                                 strict=True):
        torch.testing.assert_close(a, b, msg=name)


def run(experiments, capsys, sms_data_dir, results, *options):
    experiments.main([*SMALL_RUN, "--data-dir", str(sms_data_dir),
                      "--results-csv", str(results), *options])
    stdout = capsys.readouterr().out
    accuracies = {name: float(value) for name, value in re.findall(
        r"^(Training|Validation|Test) accuracy: ([\d.]+)%$", stdout, re.M)}
    with open(results, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return stdout, accuracies, rows


@pytest.mark.parametrize("options", [
    ["--trainable-layers", "last_layer"], ["--trainable_layers", "last_two_blocks"],
    ["--trainable-layers", "all"], ["--trainable-layers", "lora", "--lora-rank", "2"],
    ["--trainable-token-pos", "first"], ["--trainable_token_pos", "flexible"],
    ["--average-embeddings", "--disable-causal-mask"],
], ids=lambda options: " ".join(options))
def test_each_choice_runs_and_appends_a_results_row(experiments, capsys, sms_data_dir,
                                                    tmp_path, options):
    results = tmp_path / "results.csv"
    stdout, accuracies, rows = run(experiments, capsys, sms_data_dir, results, *options)
    assert set(accuracies) == {"Training", "Validation", "Test"}
    assert all(0 <= value <= 100 for value in accuracies.values())
    assert "2 training, 2 validation and 2 test batches" in stdout
    assert len(rows) == 1
    row = rows[0]
    setting = options[0].lstrip("-").replace("-", "_")
    if len(options) > 1 and not options[1].startswith("--"):
        assert row[setting] == options[1]
    else:
        assert row[setting] == "True"
    for key in ("train_acc", "val_acc", "test_acc"):
        assert 0 <= float(row[key]) <= 1
        assert float(row[key]) * 100 == pytest.approx(accuracies[
            {"train_acc": "Training", "val_acc": "Validation", "test_acc": "Test"}[key]], abs=0.01)
    trainable = int(re.search(r"Trainable parameters: ([\d,]+)", stdout)[1].replace(",", ""))
    assert int(row["trainable_params"]) == trainable
    assert float(row["train_time_s"]) >= 0


def test_no_padding_runs_batches_of_one_and_rows_accumulate(experiments, capsys, sms_data_dir,
                                                            tmp_path):
    results = tmp_path / "results.csv"
    run(experiments, capsys, sms_data_dir, results)
    stdout, _, rows = run(experiments, capsys, sms_data_dir, results,
                          "--no-padding", "--accumulation-steps", "4")
    assert "Texts are not padded (batches of one)" in stdout
    assert "8 training, 8 validation and 8 test batches" in stdout
    assert [(row["no_padding"], row["batch_size"], row["context_length"]) for row in rows] == [
        ("False", "4", "120"), ("True", "1", "none")]


def test_a_results_file_with_other_columns_is_never_touched(experiments, tmp_path, capsys):
    results = tmp_path / "mine.csv"
    results.write_text("name,score\nalice,3\n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        experiments.parse_args(["--results-csv", str(results)])
    assert info.value.code == 2
    assert "--results-csv" in capsys.readouterr().err
    assert results.read_text(encoding="utf-8") == "name,score\nalice,3\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mine.csv"]
