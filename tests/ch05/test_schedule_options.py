"""gpt_train.py's appendix D options: warm-up, cosine decay and clipping, off by default."""

import math

import pytest
import torch
from support.course_imports import import_course_module

gpt_train = import_course_module("ch05/01_main-chapter-code/gpt_train.py")
BOOK_SETTINGS = {"learning_rate": 4e-4, "num_epochs": 1, "batch_size": 2, "weight_decay": 0.1}


def settings(**changes):
    return gpt_train.checked_settings({"context_length": 8}, {**BOOK_SETTINGS, **changes})


def run_steps(hook, steps, gradient_scale):
    """Step an optimizer `steps` times with large gradients; record lr and gradient norms."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=4e-4)
    optimizer.register_step_pre_hook(hook)
    rates, norms = [], []
    for _ in range(steps):
        optimizer.zero_grad()
        (layer(torch.ones(1, 4)).sum() * gradient_scale).backward()
        optimizer.step()
        rates.append(optimizer.param_groups[0]["lr"])
        norms.append(torch.nn.utils.get_total_norm([p.grad for p in layer.parameters()]).item())
    return rates, norms


def test_the_books_run_has_no_schedule():
    assert gpt_train.learning_rate_schedule(settings(), total_steps=10) is None


def test_rates_follow_appendix_d_and_clipping_starts_after_the_warm_up():
    hook = gpt_train.learning_rate_schedule(
        settings(warmup_steps=3, min_lr=1e-5, max_grad_norm=1.0), total_steps=10)
    rates, norms = run_steps(hook, 10, gradient_scale=100.0)
    expected = [gpt_train.learning_rate_at(step, 10, 3, 1e-5, 4e-4, 1e-5) for step in range(10)]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert rates[3] == pytest.approx(4e-4) and rates[0] == pytest.approx(1e-5)
    assert all(norm > 1.0 for norm in norms[:3])  # warm-up: not clipped
    assert all(math.isclose(norm, 1.0, rel_tol=1e-5) for norm in norms[3:])


def test_warm_up_without_min_lr_keeps_the_peak_afterwards():
    hook = gpt_train.learning_rate_schedule(settings(warmup_steps=2), total_steps=6)
    rates, _ = run_steps(hook, 6, gradient_scale=1.0)
    assert rates[2:] == pytest.approx([4e-4] * 4)


@pytest.mark.parametrize("changes, key", [
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"min_lr": 1e-3}, "min_lr"),           # above the peak
    ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ({"initial_lr": -1e-5}, "initial_lr"),
])
def test_bad_schedule_settings_are_named(changes, key):
    with pytest.raises(gpt_train.SettingError) as error:
        settings(**changes)
    assert error.value.key == key
