"""Chapter 7's data pipeline: the dataset, the prompt format, the splits, the collate
function's three drafts (the book's toy batch, exactly) and the loaders."""

import pytest
import torch
import torch.nn.functional as F

TOY_BATCH = ([0, 1, 2, 3, 4], [5, 6], [7, 8, 9])
PAD = 50256
PREAMBLE = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.")


def test_dataset_has_1100_entries_with_three_fields(instruction_data):
    assert len(instruction_data) == 1100
    assert all(set(entry) == {"instruction", "input", "output"} for entry in instruction_data)
    assert instruction_data[50]["input"] == "Ocassion"
    assert instruction_data[999]["input"] == ""


def test_split_is_85_10_5_in_order(ch07, instruction_data):
    train, test, val = ch07.split_instruction_data(instruction_data)
    assert (len(train), len(test), len(val)) == (935, 110, 55)
    assert train + test + val == instruction_data


def test_format_input_with_and_without_input(ch07, instruction_data):
    with_input = ch07.format_input({"instruction": "Fix the spelling.", "input": "Ocassion",
                                    "output": "Occasion"})
    assert with_input == (f"{PREAMBLE}\n\n### Instruction:\nFix the spelling."
                          "\n\n### Input:\nOcassion")
    without_input = ch07.format_input({"instruction": "Name a color.", "input": "",
                                       "output": "Blue"})
    assert without_input == f"{PREAMBLE}\n\n### Instruction:\nName a color."
    entry = instruction_data[999]
    assert ch07.format_input(entry).endswith(f"### Instruction:\n{entry['instruction']}")


def test_dataset_items_are_prompt_and_response_tokens(ch07, tokenizer, instruction_data):
    entries = instruction_data[:3]
    dataset = ch07.InstructionDataset(entries, tokenizer)
    assert len(dataset) == 3
    for entry, ids in zip(entries, [dataset[i] for i in range(3)], strict=True):
        text = ch07.format_input(entry) + f"\n\n### Response:\n{entry['output']}"
        assert ids == tokenizer.encode(text)
        assert tokenizer.decode(ids) == text


def test_collate_drafts_on_the_books_toy_batch(ch07):
    inputs = ch07.custom_collate_draft_1(TOY_BATCH)
    expected_inputs = torch.tensor([[0, 1, 2, 3, 4], [5, 6, PAD, PAD, PAD], [7, 8, 9, PAD, PAD]])
    assert torch.equal(inputs, expected_inputs)

    inputs, targets = ch07.custom_collate_draft_2(TOY_BATCH)
    assert torch.equal(inputs, expected_inputs)
    assert torch.equal(targets, torch.tensor(
        [[1, 2, 3, 4, PAD], [6, PAD, PAD, PAD, PAD], [8, 9, PAD, PAD, PAD]]))


def test_final_collate_ignores_padding_after_the_first_end_of_text(ch07):
    inputs, targets = ch07.custom_collate_fn(TOY_BATCH)
    assert torch.equal(inputs, torch.tensor(
        [[0, 1, 2, 3, 4], [5, 6, PAD, PAD, PAD], [7, 8, 9, PAD, PAD]]))
    assert torch.equal(targets, torch.tensor(
        [[1, 2, 3, 4, PAD], [6, PAD, -100, -100, -100], [8, 9, PAD, -100, -100]]))


def test_final_collate_truncates_to_allowed_max_length(ch07):
    inputs, targets = ch07.custom_collate_fn(TOY_BATCH, allowed_max_length=3)
    assert torch.equal(inputs, torch.tensor([[0, 1, 2], [5, 6, PAD], [7, 8, 9]]))
    assert torch.equal(targets, torch.tensor([[1, 2, 3], [6, PAD, -100], [8, 9, PAD]]))


def test_final_collate_options_and_a_50256_inside_a_text(ch07):
    # padding is found by position: a 50256 that belongs to the text stays a target
    inputs, targets = ch07.custom_collate_fn([[1, PAD, 2], [3]], pad_token_id=PAD,
                                             ignore_index=-1)
    assert torch.equal(inputs, torch.tensor([[1, PAD, 2], [3, PAD, PAD]]))
    assert torch.equal(targets, torch.tensor([[PAD, 2, PAD], [PAD, -1, -1]]))


def test_cross_entropy_values_with_and_without_an_ignored_row():
    logits_1 = torch.tensor([[-1.0, 1.0], [-0.5, 1.5]])
    logits_2 = torch.tensor([[-1.0, 1.0], [-0.5, 1.5], [-0.5, 1.5]])
    loss_1 = F.cross_entropy(logits_1, torch.tensor([0, 1]))
    loss_2 = F.cross_entropy(logits_2, torch.tensor([0, 1, 1]))
    loss_3 = F.cross_entropy(logits_2, torch.tensor([0, 1, -100]))
    # the book's printed values, and the same from the definition: mean of -log softmax
    assert loss_1.item() == pytest.approx(1.1269, abs=1e-4)
    assert loss_2.item() == pytest.approx(0.7936, abs=1e-4)
    manual = -(torch.log_softmax(logits_1, dim=1)[[0, 1], [0, 1]]).mean()
    assert loss_1.item() == pytest.approx(manual.item(), abs=1e-6)
    assert torch.equal(loss_1, loss_3)


def test_loaders_batch_8_and_116_training_batches(ch07, tokenizer, instruction_data):
    train, test, val = ch07.split_instruction_data(instruction_data)
    torch.manual_seed(123)
    train_loader, val_loader, test_loader = ch07.create_instruction_loaders(
        train, val, test, tokenizer, ch07.custom_collate_fn, batch_size=8)
    assert (len(train_loader), len(val_loader), len(test_loader)) == (116, 7, 14)
    batches = list(train_loader)
    assert all(inputs.shape[0] == 8 and inputs.shape == targets.shape
               for inputs, targets in batches)
    # shuffled: the first batch is not the first eight entries
    first_inputs = batches[0][0]
    in_order = ch07.custom_collate_fn(
        [ch07.InstructionDataset(train[:8], tokenizer)[i] for i in range(8)])[0]
    assert first_inputs.shape != in_order.shape or not torch.equal(first_inputs, in_order)
