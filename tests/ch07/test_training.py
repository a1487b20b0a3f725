"""Finetuning mechanics on a tiny random GPT: the loss falls, answers are extracted."""

import torch
from support.helpers import tiny_gpt_config

TINY_CONFIG = tiny_gpt_config(context_length=128, emb_dim=16, n_heads=2, n_layers=1,
                              qkv_bias=True)


def test_training_loop_on_instruction_batches_lowers_the_loss(ch07, previous, tokenizer,
                                                              instruction_data, capsys):
    entries = [entry for entry in instruction_data if not entry["input"]][:4]
    torch.manual_seed(123)
    train_loader, val_loader, _ = ch07.create_instruction_loaders(
        entries, entries[:2], entries[:2], tokenizer, ch07.custom_collate_fn, batch_size=2)
    model = previous.GPTModel(TINY_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)

    torch.manual_seed(123)
    # a short start context: the per-epoch sample of 50 tokens is the slowest part
    train_losses, val_losses, tokens_seen = previous.train_model_simple(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=2, eval_freq=3,
        eval_iter=1, start_context="Name", tokenizer=tokenizer)

    assert len(train_losses) == len(val_losses) == len(tokens_seen) == 2  # steps 0 and 3
    assert train_losses[-1] < train_losses[0] - 0.5
    assert 0 < tokens_seen[0] < tokens_seen[1]
    assert capsys.readouterr().out.count("Name") == 2  # one sample per epoch


def test_padding_targets_do_not_count_in_the_loss(ch07, previous):
    torch.manual_seed(0)
    model = previous.GPTModel(TINY_CONFIG).eval()
    inputs, targets = ch07.custom_collate_fn([[10, 11, 12, 13], [20, 21]])
    with torch.no_grad():
        loss = previous.calc_loss_batch(inputs, targets, model, "cpu")
        logits = model(inputs)
    counted = targets != -100
    reference = torch.nn.functional.cross_entropy(logits[counted], targets[counted])
    assert torch.allclose(loss, reference)
    assert counted.sum() == 4 + 2  # every real token predicts one target, +1 end-of-text each


def test_extract_response_cuts_at_the_header_and_end_of_text(ch07):
    prompt = "Below is ...\n\n### Instruction:\nName a color."
    assert ch07.extract_response(prompt + "\n\n### Response:\nBlue.", prompt) == "Blue."
    assert ch07.extract_response(
        prompt + "\n\n### Response:\nBlue.<|endoftext|>### Instruction:\nmore", prompt) == "Blue."
    # no header generated: everything after the prompt, up to an end-of-text marker
    assert ch07.extract_response(prompt + " Red<|endoftext|>x", prompt) == "Red"
    # only the first header counts; a second one belongs to the answer text
    assert ch07.extract_response(prompt + "### Response: A ### Response: B", prompt) \
        == "A ### Response: B"


def test_generated_answers_are_stored_under_model_response(ch07, previous, tokenizer):
    torch.manual_seed(0)
    model = previous.GPTModel(TINY_CONFIG)
    entries = [{"instruction": "Name a color.", "input": "", "output": "Blue"}]
    answered = ch07.generate_test_responses(model, entries, tokenizer, "cpu", max_new_tokens=3)
    assert answered is entries and isinstance(entries[0]["model_response"], str)
    assert len(tokenizer.encode(entries[0]["model_response"])) <= 4
