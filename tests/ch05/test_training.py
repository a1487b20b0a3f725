"""The chapter 5 training loop on a small model: it learns, and it follows the book's rules."""

import math
from pathlib import Path

import pytest
import tiktoken
import torch
from support.course_imports import import_course_module

ch05 = import_course_module("ch05/01_main-chapter-code/gpt_train.py")
ch05_utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")
pc = import_course_module("ch05/01_main-chapter-code/previous_chapters.py")

TINY_CONFIG = {**ch05.MODEL_CONFIGS["tiny"], "context_length": 32}
# a slice of the text shipped with the repo: no download, and ~8 batches per epoch
TEXT = ch05.FALLBACK_TEXT.read_text(encoding="utf-8")[:5_000]


@pytest.fixture(scope="module")
def tokenizer():
    ch05.cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


def make_loaders(text=TEXT, context_length=32):
    split_idx = int(0.90 * len(text))
    train_loader = pc.create_dataloader_v1(text[:split_idx], batch_size=4,
                                           max_length=context_length, stride=context_length,
                                           drop_last=True, shuffle=True)
    val_loader = pc.create_dataloader_v1(text[split_idx:], batch_size=4,
                                         max_length=context_length, stride=context_length,
                                         drop_last=False, shuffle=False)
    return train_loader, val_loader


def run_training(tokenizer, num_epochs=2, eval_freq=3, seed=123):
    torch.manual_seed(seed)
    train_loader, val_loader = make_loaders()
    torch.manual_seed(seed)
    model = pc.GPTModel(TINY_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    history = ch05_utils.train_model_simple(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=num_epochs,
        eval_freq=eval_freq, eval_iter=2, start_context="The river", tokenizer=tokenizer,
    )
    return model, train_loader, history


def reference_training(model, train_loader, val_loader, optimizer, num_epochs, eval_freq,
                       eval_iter):
    """A straightforward loop written here, independently of the course code.

    It follows the book's training loop: the global step starts at -1 and grows
    after each optimizer step; when step % eval_freq == 0 it evaluates (eval mode,
    no gradients) the mean loss of the first `eval_iter` batches of each loader
    and records the number of input tokens seen so far.
    """
    train_losses, val_losses, seen, tokens, step = [], [], [], 0, -1
    for _ in range(num_epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            loss.backward()
            optimizer.step()
            tokens += x.numel()
            step += 1
            if step % eval_freq == 0:
                model.eval()
                losses = []
                with torch.no_grad():
                    for loader in (train_loader, val_loader):
                        batch_losses = []
                        for i, (xb, yb) in enumerate(loader):
                            if i == eval_iter:
                                break
                            out = model(xb)
                            batch_losses.append(torch.nn.functional.cross_entropy(
                                out.flatten(0, 1), yb.flatten()).item())
                        losses.append(sum(batch_losses) / len(batch_losses))
                model.train()
                train_losses.append(losses[0])
                val_losses.append(losses[1])
                seen.append(tokens)
        # the chapter's loop generates a greedy sample here: no random draws
    return train_losses, val_losses, seen


@pytest.mark.slow
def test_losses_fall_and_history_is_consistent(tokenizer, capsys):
    _, train_loader, (train_losses, val_losses, tokens_seen) = run_training(tokenizer)
    steps = 2 * len(train_loader)
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == math.ceil(steps / 3)
    # step 0 is evaluated after the first optimizer step; then every 3 steps
    batch_tokens = 4 * 32
    assert tokens_seen == [(step + 1) * batch_tokens for step in range(0, steps, 3)]
    assert train_losses[-1] < train_losses[0] - 0.5
    assert val_losses[-1] < val_losses[0]
    assert all(math.isfinite(v) for v in train_losses + val_losses)

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Ep 1 (Step 000000): Train loss ")
    samples = [line for line in lines if line.startswith("The river")]
    assert len(samples) == 2  # one greedy sample per epoch, each on one line


@pytest.mark.slow
def test_seeded_run_is_reproducible(tokenizer):
    _, _, first = run_training(tokenizer, num_epochs=1)
    _, _, second = run_training(tokenizer, num_epochs=1)
    assert first == second


@pytest.mark.slow
def test_matches_a_straightforward_training_loop(tokenizer):
    """Same seed, same data: the chapter's loop and a plain one agree exactly."""
    _, _, history = run_training(tokenizer, num_epochs=2, eval_freq=3)

    torch.manual_seed(123)
    train_loader, val_loader = make_loaders()
    torch.manual_seed(123)
    model = pc.GPTModel(TINY_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    expected = reference_training(model, train_loader, val_loader, optimizer, num_epochs=2,
                                  eval_freq=3, eval_iter=2)
    assert history == expected


def test_calc_loss_loader_averages_the_first_batches():
    torch.manual_seed(0)
    model = pc.GPTModel(TINY_CONFIG).eval()
    loader = pc.create_dataloader_v1(TEXT, batch_size=4, max_length=32, stride=32,
                                     shuffle=False, drop_last=False)
    with torch.no_grad():
        per_batch = [ch05_utils.calc_loss_batch(x, y, model, "cpu").item() for x, y in loader]
        assert len(per_batch) > 2
        assert ch05_utils.calc_loss_loader(loader, model, "cpu") == pytest.approx(
            sum(per_batch) / len(per_batch))
        assert ch05_utils.calc_loss_loader(loader, model, "cpu", num_batches=2) == pytest.approx(
            sum(per_batch[:2]) / 2)
        # asking for more batches than there are uses them all
        assert ch05_utils.calc_loss_loader(loader, model, "cpu", num_batches=10_000) == (
            pytest.approx(sum(per_batch) / len(per_batch)))
    assert math.isnan(ch05_utils.calc_loss_loader([], model, "cpu"))


def test_calc_loss_batch_is_cross_entropy_of_the_next_token():
    torch.manual_seed(0)
    model = pc.GPTModel(TINY_CONFIG).eval()
    inputs = torch.randint(0, TINY_CONFIG["vocab_size"], (2, 5))
    targets = torch.randint(0, TINY_CONFIG["vocab_size"], (2, 5))
    with torch.no_grad():
        probas = torch.softmax(model(inputs), dim=-1)
        expected = -torch.log(probas.gather(-1, targets.unsqueeze(-1))).mean()
        loss = ch05_utils.calc_loss_batch(inputs, targets, model, "cpu")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_token_id_helpers_round_trip(tokenizer):
    ids = ch05_utils.text_to_token_ids("Hello, world<|endoftext|>", tokenizer)
    assert ids.tolist() == [[15496, 11, 995, 50256]]
    assert ch05_utils.token_ids_to_text(ids, tokenizer) == "Hello, world<|endoftext|>"


def test_plot_losses_draws_both_curves(tmp_path):
    fig = ch05_utils.plot_losses(torch.linspace(0, 2, 3), [10, 20, 30], [3.0, 2.0, 1.0],
                           [3.5, 2.5, 2.0])
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["Training loss",
                                                              "Validation loss"]
    assert fig.axes[1].get_xlabel() == "Tokens seen"
    fig.savefig(tmp_path / "plot.pdf")
    assert Path(tmp_path / "plot.pdf").stat().st_size > 0
