"""Chapter 5's functions as one module: training, generation, checkpoints.

`gpt_train.py`, `gpt_generate.py` and `bench_train.py` import what they need
from here, so no script imports another script. The functions are copied
unchanged from the chapter notebook ch05.ipynb (their home); a test keeps the
copies identical. `training_progress` and the-verdict.txt's address are shared by the scripts;
their command-line conventions (settings tables, device choice) come from
`script_helpers.py`.
"""

import math
import sys
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from downloads import atomic_write
from matplotlib.ticker import MaxNLocator
from previous_chapters import generate_text_simple
from tqdm import tqdm

THE_VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
THE_VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"


@contextmanager
def training_progress(optimizer, total_steps, tokens_per_step):
    """A tqdm bar (stderr) counting training tokens, advanced after each optimizer step.

    PyTorch's optimizer step hook lets the bar follow the chapter's
    `train_model_simple` without changing it: its printed losses and samples
    stay exactly the book's, on stdout, while the bar shows tokens per second.
    """
    bar = tqdm(total=total_steps * tokens_per_step, unit="tok", unit_scale=True,
               desc="training", file=sys.stderr, dynamic_ncols=True)
    handle = optimizer.register_step_post_hook(lambda *_: bar.update(tokens_per_step))
    try:
        yield bar
    finally:
        handle.remove()
        bar.close()


# Copied from ch05/01_main-chapter-code/ch05.ipynb::text_to_token_ids
def text_to_token_ids(text, tokenizer):
    """Encode `text` as a (1, num_tokens) tensor: a batch holding one sequence."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)


# Copied from ch05/01_main-chapter-code/ch05.ipynb::token_ids_to_text
def token_ids_to_text(token_ids, tokenizer):
    """Decode a (1, num_tokens) or (num_tokens,) tensor of token ids to text."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


# Copied from ch05/01_main-chapter-code/ch05.ipynb::calc_loss_batch
def calc_loss_batch(input_batch, target_batch, model, device):
    """Mean cross-entropy of the model's next-token predictions on one batch."""
    input_batch = input_batch.to(device)
    target_batch = target_batch.to(device)
    logits = model(input_batch)
    # cross_entropy wants (N, classes) and (N,): merge the batch and token dims
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


# Copied from ch05/01_main-chapter-code/ch05.ipynb::calc_loss_loader
def calc_loss_loader(data_loader, model, device, num_batches=None):
    """Average batch loss over the first `num_batches` batches (all by default)."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total_loss = 0.0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        total_loss += calc_loss_batch(input_batch, target_batch, model, device).item()
    return total_loss / num_batches


# Copied from ch05/01_main-chapter-code/ch05.ipynb::evaluate_model
def evaluate_model(model, train_loader, val_loader, device, eval_iter):
    """Training and validation loss on `eval_iter` batches each, without dropout."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


# Copied from ch05/01_main-chapter-code/ch05.ipynb::generate_and_print_sample
def generate_and_print_sample(model, tokenizer, device, start_context):
    """Print a greedy 50-token continuation of `start_context` on one line."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate_text_simple(
            model=model, idx=encoded, max_new_tokens=50, context_size=context_size
        )
    decoded_text = token_ids_to_text(token_ids, tokenizer)
    print(decoded_text.replace("\n", " "))  # one line, however many newlines
    model.train()


# Copied from ch05/01_main-chapter-code/ch05.ipynb::train_model_simple
def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs,
                       eval_freq, eval_iter, start_context, tokenizer):
    """Pretrain `model` with next-token prediction; return the loss history.

    Every `eval_freq` optimizer steps (starting with the first) we measure the
    training and validation loss on `eval_iter` batches and record how many
    tokens the model has seen so far. After each epoch we print a sample.
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1

    for epoch in range(num_epochs):
        model.train()  # dropout on
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()  # gradients from the previous step must not add up
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            # numel() is a plain int from the shape: no need to wait for the device
            tokens_seen += input_batch.numel()
            global_step += 1

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(
                    model, train_loader, val_loader, device, eval_iter
                )
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen


# Copied from ch05/01_main-chapter-code/ch05.ipynb::plot_losses
def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses):
    """Plot both losses against epochs, with tokens seen on a second x-axis."""
    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_losses, label="Training loss")
    ax1.plot(epochs_seen, val_losses, linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only

    # A second x-axis sharing the y-axis: the same points placed by tokens seen.
    # The invisible plot only sets the axis range so the two scales line up.
    ax2 = ax1.twiny()
    ax2.plot(tokens_seen, train_losses, alpha=0)
    ax2.set_xlabel("Tokens seen")

    fig.tight_layout()
    return fig


# Copied from ch05/01_main-chapter-code/ch05.ipynb::generate
def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None,
             eos_id=None):
    """Extend the token ids `idx` (batch, tokens) by up to `max_new_tokens` tokens.

    temperature 0 picks the most likely token (greedy, deterministic); a
    temperature > 0 samples from the softmax of logits / temperature, so lower
    values are more conservative and higher values more surprising. top_k keeps
    only the k most likely tokens as candidates. Generation stops early when
    every sequence in the batch produces `eos_id`.
    """
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # the model supports at most context_size tokens
        with torch.no_grad():
            logits = model(idx_cond)
        logits = logits[:, -1, :]  # only the last position predicts the next token

        if top_k is not None:
            top_logits, _ = torch.topk(logits, top_k)
            kth_largest = top_logits[:, -1:]
            logits = logits.masked_fill(logits < kth_largest, -torch.inf)

        if temperature > 0.0:
            probs = torch.softmax(logits / temperature, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
        else:
            idx_next = torch.argmax(logits, dim=-1, keepdim=True)

        if eos_id is not None and bool((idx_next == eos_id).all()):
            break
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


# Copied from ch05/01_main-chapter-code/ch05.ipynb::save_checkpoint
def save_checkpoint(path, model, optimizer=None, config=None):
    """Save the model (and optimizer state and config, if given) to `path`.

    torch.save writes to a temporary file next to `path` that is then renamed:
    a crash halfway never leaves a truncated checkpoint behind. Everything
    stored is tensors, numbers and strings, so `weights_only=True` can load it.
    """
    path = Path(path)
    checkpoint = {"model_state_dict": model.state_dict()}
    if optimizer is not None:
        checkpoint["optimizer_state_dict"] = optimizer.state_dict()
    if config is not None:
        checkpoint["config"] = dict(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:  # SIGTERM too; the mode a plain open() gives
        torch.save(checkpoint, f)


# Copied from ch05/01_main-chapter-code/ch05.ipynb::load_checkpoint
def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    """Load a checkpoint written by `save_checkpoint` into `model` (and `optimizer`).

    The book's plain `torch.save(model.state_dict(), path)` loads too: it is the
    model's part of a checkpoint, with no optimizer state and no config.
    `weights_only=True` refuses files that would run code while loading. If the
    checkpoint was saved from a model with another configuration, the error
    lists every tensor that does not fit instead of PyTorch's generic message.
    Returns the checkpoint dictionary (e.g. for its "config").
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if "model_state_dict" not in checkpoint:  # the book's bare state dict
        checkpoint = {"model_state_dict": checkpoint}
    state_dict = checkpoint["model_state_dict"]
    expected = model.state_dict()

    problems = [
        f"{name}: checkpoint {tuple(tensor.shape)}, model {tuple(expected[name].shape)}"
        for name, tensor in state_dict.items()
        if name in expected and tensor.shape != expected[name].shape
    ]
    problems += [f"{name}: missing from checkpoint" for name in expected
                 if name not in state_dict]
    problems += [f"{name}: not in this model" for name in state_dict if name not in expected]
    if problems:
        raise ValueError(
            f"checkpoint {path} does not fit this model's configuration "
            f"({len(problems)} mismatches):\n  " + "\n  ".join(problems)
        )

    if optimizer is not None and "optimizer_state_dict" not in checkpoint:
        raise ValueError(f"checkpoint {path} holds no optimizer state (saved without one)")

    model.load_state_dict(state_dict)
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    return checkpoint


# Copied from ch05/01_main-chapter-code/ch05.ipynb::read_checkpoint_config
def read_checkpoint_config(path):
    """The model configuration stored in a checkpoint by `save_checkpoint`."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "config" not in checkpoint:
        raise ValueError(f"checkpoint {path} has no stored model configuration")
    return checkpoint["config"]


# Appendix D's schedule (warm-up, then cosine decay), for gpt_train.py's schedule options
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
