"""Chapter 5's pretraining code, for models other than chapter 4's GPT.

Copies from ch05/01_main-chapter-code (kept identical by tools/copy_forward.py),
and two deliberate variants, as in the book repository's ch05/14 notebooks:
`create_dataloader_v1` takes the tokenizer (Llama's or Qwen's, not GPT-2's), and
`generate_and_print_sample` reads the context length from the model's RoPE
table, since these models have no position-embedding layer to read it from.
"""

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator
from torch.utils.data import DataLoader, Dataset


# Copied from ch02/01_main-chapter-code/ch02.ipynb::GPTDatasetV1
class GPTDatasetV1(Dataset):
    """Input/target pairs cut from one long text with a sliding window.

    Each input is `max_length` token ids; its target is the same window moved
    one token to the right, so position i of the target is the token that
    follows position i of the input.
    """

    def __init__(self, txt, tokenizer, max_length, stride):
        self.input_ids = []
        self.target_ids = []

        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})

        for start in range(0, len(token_ids) - max_length, stride):
            window = token_ids[start:start + max_length + 1]
            self.input_ids.append(torch.tensor(window[:-1]))
            self.target_ids.append(torch.tensor(window[1:]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


# Copied from ch04/01_main-chapter-code/ch04.ipynb::generate_text_simple
def generate_text_simple(model, idx, max_new_tokens, context_size):
    """Greedily append `max_new_tokens` token ids to the batch `idx`.

    At each step the model sees at most the last `context_size` tokens (the
    longest input it supports) and we keep the most likely next token.
    """
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        next_token_logits = logits[:, -1, :]
        idx_next = torch.argmax(next_token_logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


# Copied from ch05/01_main-chapter-code/gpt_utils.py::THE_VERDICT_URL
THE_VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)


# Copied from ch05/01_main-chapter-code/gpt_utils.py::THE_VERDICT_SHA256
THE_VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"


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


def create_dataloader_v1(txt, tokenizer, batch_size=4, max_length=256, stride=128,
                         shuffle=True, drop_last=True, num_workers=0):
    """Chapter 2's data loader for any tokenizer: sliding-window batches of `txt`.

    The book repository's ch05/14 signature: the tokenizer is a parameter,
    because Llama 3 and Qwen3 each bring their own.
    """
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
    )


def generate_and_print_sample(model, tokenizer, device, start_context):
    """Print a greedy 50-token continuation of `start_context` on one line.

    Chapter 5's version reads the context length from `model.pos_emb`; Llama
    and Qwen encode positions with RoPE, whose cos table has one row per position.
    """
    model.eval()
    context_size = model.cos.shape[0]
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
