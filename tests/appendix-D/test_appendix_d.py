"""Appendix D: the learning-rate schedule, gradient clipping and `train_model`."""

import math

import pytest
import torch
from support.course_imports import import_course_module, notebook_definitions
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("single_thread_torch")

FOLDER = "appendix-D/01_main-chapter-code"
pc = import_course_module(f"{FOLDER}/previous_chapters.py")
appendix_d = notebook_definitions(
    f"{FOLDER}/appendix-D.ipynb", ["learning_rate_at", "find_highest_gradient", "train_model"])
learning_rate_at = appendix_d.learning_rate_at

# The book's D.1/D.2 settings: 15 epochs of 9 batches, 20% warm-up.
BOOK = {"total_steps": 135, "warmup_steps": 27, "initial_lr": 1e-4, "peak_lr": 0.01,
        "min_lr": 1e-5}


def book_lr(step):
    return learning_rate_at(step, **BOOK)


@pytest.mark.parametrize("step, expected", [(0, 1e-4), (27, 0.01), (81, 5.005e-3)])
def test_schedule_matches_the_book_values(step, expected):
    assert book_lr(step) == pytest.approx(expected, rel=1e-9)


def test_warm_up_is_linear_and_decay_follows_the_cosine_formula():
    increment = (0.01 - 1e-4) / 27
    for step in range(27):
        assert book_lr(step) == pytest.approx(1e-4 + step * increment, rel=1e-9)
    for step in range(27, 135):
        cosine = 0.5 * (1 + math.cos(math.pi * (step - 27) / 108))
        assert book_lr(step) == pytest.approx(1e-5 + (0.01 - 1e-5) * cosine, rel=1e-9)


def test_warm_up_rises_and_decay_falls():
    rates = [book_lr(step) for step in range(135)]
    rising, falling = rates[:28], rates[27:]
    assert all(a < b for a, b in zip(rising, rising[1:], strict=False))  # strictly up to the peak
    assert all(a > b for a, b in zip(falling, falling[1:], strict=False))  # strictly down after
    assert max(rates) == rates[27]


@settings(max_examples=100, deadline=None)
@given(total=st.integers(1, 200), warmup_fraction=st.floats(0, 1),
       initial=st.floats(1e-7, 1e-3), peak=st.floats(1e-3, 1.0), floor=st.floats(0, 1e-7),
       extra=st.integers(0, 20))
def test_schedule_never_leaves_its_range(total, warmup_fraction, initial, peak, floor, extra):
    warmup = int(warmup_fraction * total)
    for step in range(total + extra):  # steps past the end stay at the minimum
        lr = learning_rate_at(step, total, warmup, initial, peak, floor)
        assert floor <= lr <= peak * (1 + 1e-12)


def test_schedule_rejects_more_warm_up_than_steps():
    with pytest.raises(ValueError, match="warmup_steps"):
        learning_rate_at(0, total_steps=10, warmup_steps=11, initial_lr=1e-4, peak_lr=1e-3,
                         min_lr=1e-5)


def set_gradients(model, value):
    for param in model.parameters():
        param.grad = torch.full_like(param, value)


def total_norm(model):
    return math.sqrt(sum(float(param.grad.double().pow(2).sum()) for param in model.parameters()))


@pytest.mark.parametrize("scale", [0.5, 7.0])
def test_clipping_leaves_small_gradients_and_scales_large_ones_to_max_norm(scale):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    entries = sum(param.numel() for param in model.parameters())
    set_gradients(model, scale / math.sqrt(entries))  # global norm == scale
    before = [param.grad.clone() for param in model.parameters()]

    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)

    if scale < 1.0:
        assert all(torch.equal(b, p.grad) for b, p in zip(before, model.parameters(), strict=True))
    else:
        assert total_norm(model) == pytest.approx(1.0, rel=1e-5)
        for b, p in zip(before, model.parameters(), strict=True):  # same direction
            torch.testing.assert_close(p.grad, b / scale)


def test_find_highest_gradient_is_the_largest_entry_over_all_parameters():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    assert appendix_d.find_highest_gradient(model) is None  # no backward pass yet
    model(torch.randn(8, 5)).pow(2).sum().backward()
    expected = max(float(param.grad.max()) for param in model.parameters())
    assert float(appendix_d.find_highest_gradient(model)) == expected


class ByteTokenizer:
    """Just enough of a tokenizer for the per-epoch sample: one id per character."""

    def encode(self, text, allowed_special=()):
        return [ord(char) % TINY["vocab_size"] for char in text]

    def decode(self, ids):
        return "".join(chr(65 + i % 26) for i in ids)


TINY = {"vocab_size": 32, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 1,
        "drop_rate": 0.0, "qkv_bias": False}


def periodic_loader(num_windows=24, batch_size=4, shuffle=True):
    """Windows of a repeating sequence: easy to learn, so the loss must fall."""
    tokens = torch.arange(num_windows * TINY["context_length"] + 1) % 11
    windows = tokens[:-1].view(num_windows, -1)
    targets = tokens[1:].view(num_windows, -1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(windows, targets),
                                       batch_size=batch_size, shuffle=shuffle)


def test_train_model_learns_follows_the_schedule_and_clips_after_warm_up(monkeypatch):
    torch.manual_seed(123)
    train_loader, val_loader = periodic_loader(), periodic_loader(8, shuffle=False)
    model = pc.GPTModel(TINY)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.1)

    # Record the learning rate in force whenever the loop clips: it names the step.
    rates_when_clipped = []
    original_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *args, **kwargs):
        assert max_norm == 1.0
        rates_when_clipped.append(optimizer.param_groups[0]["lr"])
        return original_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    train_losses, val_losses, tokens_seen, lrs = appendix_d.train_model(
        model, train_loader, val_loader, optimizer, "cpu", n_epochs=3, eval_freq=2,
        eval_iter=2, start_context="ab", tokenizer=ByteTokenizer(), warmup_steps=4,
        initial_lr=1e-4, min_lr=1e-5,
    )

    total = 3 * len(train_loader)  # 18 steps, the peak rate taken from the optimizer
    assert lrs == [learning_rate_at(step, total, 4, 1e-4, 5e-3, 1e-5) for step in range(total)]
    assert rates_when_clipped == lrs[4:]  # every step from the end of warm-up on, only those
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == total // 2
    assert tokens_seen == [4 * 16 * (step + 1) for step in range(0, total, 2)]
    assert train_losses[-1] < 0.5 * train_losses[0]
    assert val_losses[-1] < 0.5 * val_losses[0]
