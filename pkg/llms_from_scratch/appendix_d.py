"""Appendix D: the training loop with warm-up, cosine decay and gradient clipping.

Copied from appendix-D/01_main-chapter-code/appendix-D.ipynb (the home);
`tools/copy_forward.py` keeps every definition identical to it.
"""

import math

import torch

from .ch05 import calc_loss_batch, evaluate_model, generate_and_print_sample


# Copied from appendix-D/01_main-chapter-code/appendix-D.ipynb::learning_rate_at
def learning_rate_at(step, total_steps, warmup_steps, initial_lr, peak_lr, min_lr):
    """Learning rate for optimizer step `step` (counting from 0).

    Steps 0 .. warmup_steps-1 rise linearly from `initial_lr` towards `peak_lr`;
    from step `warmup_steps` on, the rate falls from `peak_lr` along half a
    cosine wave and reaches `min_lr` at step `total_steps` (so the last step,
    total_steps-1, is just above it). Steps past the end stay at `min_lr`.
    """
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps, got {warmup_steps} "
                         f"and {total_steps}")
    if step < warmup_steps:
        return initial_lr + step * (peak_lr - initial_lr) / warmup_steps
    decay_steps = total_steps - warmup_steps
    progress = min(1.0, (step - warmup_steps) / decay_steps) if decay_steps else 1.0
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


# Copied from appendix-D/01_main-chapter-code/appendix-D.ipynb::find_highest_gradient
def find_highest_gradient(model):
    """The largest entry of any parameter's gradient (None if none has one)."""
    max_grad = None
    for param in model.parameters():
        if param.grad is not None:
            param_max = param.grad.max()
            if max_grad is None or param_max > max_grad:
                max_grad = param_max
    return max_grad


# Copied from appendix-D/01_main-chapter-code/appendix-D.ipynb::train_model
def train_model(model, train_loader, val_loader, optimizer, device, n_epochs, eval_freq,
                eval_iter, start_context, tokenizer, warmup_steps, initial_lr=3e-05,
                min_lr=1e-6):
    """Chapter 5's training loop with warm-up, cosine decay and gradient clipping.

    The peak learning rate is the one `optimizer` was created with. Returns the
    losses and tokens seen at each evaluation, and the learning rate of every step.
    """
    train_losses, val_losses, track_tokens_seen, track_lrs = [], [], [], []
    tokens_seen, global_step = 0, -1

    peak_lr = optimizer.param_groups[0]["lr"]
    total_training_steps = len(train_loader) * n_epochs

    for epoch in range(n_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            global_step += 1

            lr = learning_rate_at(global_step, total_training_steps, warmup_steps,
                                  initial_lr, peak_lr, min_lr)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            track_lrs.append(lr)

            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            if global_step >= warmup_steps:  # the printed book had ">" here
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            tokens_seen += input_batch.numel()

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(
                    model, train_loader, val_loader, device, eval_iter
                )
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Epoch {epoch + 1} (step {global_step:06d}): "
                      f"train loss {train_loss:.3f}, val loss {val_loss:.3f}")

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen, track_lrs
