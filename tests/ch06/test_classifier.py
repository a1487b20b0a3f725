"""The classification model: trainable parameters, frozen weights, training, classify_review."""

import pytest
import torch
from support.helpers import tiny_gpt_config
from torch.utils.data import DataLoader, TensorDataset

TINY = tiny_gpt_config(n_heads=2, qkv_bias=True)
# For training tests, whose inputs use token ids below 1,000: a smaller vocabulary
# makes the embedding (and AdamW's work on it) 50 times smaller.
TINY_VOCAB = {**TINY, "vocab_size": 1000}


def tiny_classifier(ch06, previous_chapters, trainable_layers="last_block", seed=1,
                    config=TINY):
    torch.manual_seed(seed)
    model = previous_chapters.GPTModel(config)
    return ch06.prepare_classifier(model, TINY["emb_dim"], trainable_layers)


def test_gpt2_small_trains_7_090_946_parameters(ch06, previous_chapters):
    config = {**previous_chapters.GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True}
    with torch.device("meta"):  # shapes only: no memory, no time spent on random weights
        model = ch06.prepare_classifier(previous_chapters.GPTModel(config), 768)
    trainable = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == 7_090_946

    # the same count by hand: one block (qkv with bias, out_proj, 2-layer MLP, two
    # norms), the final norm, and a 768 x 2 head with bias
    emb = 768
    block = 4 * (emb * emb + emb) + (emb * 4 * emb + 4 * emb) + (4 * emb * emb + emb) + 4 * emb
    assert block + 2 * emb + (emb * 2 + 2) == 7_090_946
    assert all(name.startswith(("trf_blocks.11.", "final_norm.", "out_head."))
               for name in trainable)
    assert model.out_head.weight.shape == (2, 768) and model.out_head.bias is not None


def test_all_layers_option_trains_everything(ch06, previous_chapters):
    model = tiny_classifier(ch06, previous_chapters, "all", config=TINY_VOCAB)
    assert all(p.requires_grad for p in model.parameters())


def test_the_head_is_seeded(ch06, previous_chapters):
    first = tiny_classifier(ch06, previous_chapters, seed=1, config=TINY_VOCAB)
    second = tiny_classifier(ch06, previous_chapters, seed=2, config=TINY_VOCAB)
    torch.testing.assert_close(first.out_head.weight, second.out_head.weight, rtol=0, atol=0)


def test_frozen_parameters_are_bit_identical_after_a_step(ch06, previous_chapters):
    model = tiny_classifier(ch06, previous_chapters, config=TINY_VOCAB)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    inputs, labels = torch.randint(0, 1000, (4, 10)), torch.tensor([0, 1, 1, 0])
    loss = ch06.calc_loss_batch(inputs, labels, model, "cpu")
    loss.backward()
    optimizer.step()
    for name, param in model.named_parameters():
        unchanged = torch.equal(param, before[name])
        assert unchanged != param.requires_grad, name  # frozen: identical; trainable: moved


def test_loss_and_accuracy_use_the_last_token(ch06, previous_chapters):
    model = tiny_classifier(ch06, previous_chapters).eval()
    torch.manual_seed(0)
    inputs, labels = torch.randint(0, 50257, (6, 9)), torch.tensor([0, 1, 0, 1, 1, 0])
    with torch.no_grad():
        last = model(inputs)[:, -1, :]
        expected_loss = torch.nn.functional.cross_entropy(last, labels)
        loss = ch06.calc_loss_batch(inputs, labels, model, "cpu")
    torch.testing.assert_close(loss, expected_loss)
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=4)
    expected_accuracy = (last.argmax(-1) == labels).float().mean().item()
    assert ch06.calc_accuracy_loader(loader, model, "cpu") == pytest.approx(expected_accuracy)
    # only the first batch: 4 examples
    first = (last[:4].argmax(-1) == labels[:4]).float().mean().item()
    assert ch06.calc_accuracy_loader(loader, model, "cpu", num_batches=1) == pytest.approx(first)


def test_first_token_hook_classifies_from_position_zero(ch06, previous_chapters):
    model = tiny_classifier(ch06, previous_chapters).eval()
    inputs = torch.randint(0, 50257, (2, 7))
    with torch.no_grad():
        full = model(inputs)
        handle = ch06.classify_from_first_token(model)
        hooked = model(inputs)
    handle.remove()
    assert hooked.shape == (2, 1, 2)
    torch.testing.assert_close(hooked[:, -1, :], full[:, 0, :])


def learnable_loaders(batch_size=8):
    """Label = whether the last token is 1 (spam) or 0: a pattern a tiny model can learn."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randint(2, 1000, (96, 6), generator=generator)
    labels = torch.randint(0, 2, (96,), generator=generator)
    inputs[:, -1] = labels
    train = DataLoader(TensorDataset(inputs[:64], labels[:64]), batch_size=batch_size,
                       shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(inputs[64:], labels[64:]), batch_size=batch_size)
    return train, val


def run_training(ch06, previous_chapters, num_epochs=4):
    model = tiny_classifier(ch06, previous_chapters, "all", config=TINY_VOCAB)
    train_loader, val_loader = learnable_loaders()
    torch.manual_seed(123)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    history = ch06.train_classifier_simple(model, train_loader, val_loader, optimizer, "cpu",
                                           num_epochs=num_epochs, eval_freq=4, eval_iter=2)
    return model, history


def test_train_classifier_simple_learns_and_counts_examples(ch06, previous_chapters):
    model, history = run_training(ch06, previous_chapters)
    train_losses, val_losses, train_accs, val_accs, examples_seen = history
    steps = 4 * 8  # epochs x batches per epoch
    assert examples_seen == steps * 8  # batches x batch size
    assert len(train_losses) == len(val_losses) == steps // 4  # steps 0, 4, 8, ...
    assert len(train_accs) == len(val_accs) == 4  # one per epoch
    assert all(0.0 <= acc <= 1.0 for acc in train_accs + val_accs)
    assert train_losses[-1] < train_losses[0] and val_losses[-1] < val_losses[0]
    _, val_loader = learnable_loaders()
    assert ch06.calc_accuracy_loader(val_loader, model, "cpu") > 0.8


def test_training_is_reproducible(ch06, previous_chapters):
    first = run_training(ch06, previous_chapters, num_epochs=1)[1]
    second = run_training(ch06, previous_chapters, num_epochs=1)[1]
    assert first == second


class RecordInputs:
    """A forward pre-hook that keeps the token ids the model was given."""

    def __init__(self, model):
        self.seen = []
        model.register_forward_pre_hook(lambda module, args: self.seen.append(args[0]))


def test_classify_review_pads_to_max_length(ch06, previous_chapters, tokenizer):
    model = tiny_classifier(ch06, previous_chapters)
    record = RecordInputs(model)
    label = ch06.classify_review("Win cash now", model, tokenizer, "cpu", max_length=10)
    ids = tokenizer.encode("Win cash now")
    assert record.seen[0].tolist() == [ids + [50256] * (10 - len(ids))]
    with torch.no_grad():
        expected = model(record.seen[0])[:, -1, :].argmax(-1).item()
    assert label == ("spam" if expected == 1 else "not spam")


def test_classify_review_never_exceeds_the_context(ch06, previous_chapters, tokenizer):
    model = tiny_classifier(ch06, previous_chapters)  # context of 16 tokens
    record = RecordInputs(model)
    text = "This message is much longer than the tiny model's context of sixteen tokens, " * 2
    ids = tokenizer.encode(text)
    assert len(ids) > 16
    ch06.classify_review(text, model, tokenizer, "cpu")  # no max_length
    ch06.classify_review(text, model, tokenizer, "cpu", max_length=120)  # longer than context
    assert [seen.tolist() for seen in record.seen] == [[ids[:16]], [ids[:16]]]
    ch06.classify_review("Short", model, tokenizer, "cpu")  # no padding without max_length
    assert record.seen[-1].tolist() == [tokenizer.encode("Short")]


def test_classify_review_refuses_an_empty_text(ch06, previous_chapters, tokenizer):
    model = tiny_classifier(ch06, previous_chapters)
    with pytest.raises(ValueError, match="empty text"):
        ch06.classify_review("", model, tokenizer, "cpu", max_length=8)
