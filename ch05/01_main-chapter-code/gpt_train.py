"""Chapter 5 summary: pretrain GPT-2 (124M) on a short story, from the shell.

    python gpt_train.py              # the book's run: 10 epochs on the-verdict.txt
    python gpt_train.py --epochs 2   # a shorter run
    python gpt_train.py --help

It downloads Edith Wharton's short story "The Verdict" (or reads it from the
folder named by $LLMS_FROM_SCRATCH_MIRROR), splits it 90/10 into training and
validation text, and trains a randomly initialised GPT model with AdamW. It
prints the training and validation loss every few steps and a greedy sample
after each epoch, then saves the model (with the optimizer state, so training
can continue) and a plot of the losses.

With no network and no mirror it says so in one line and trains on
`fallback-text.txt`, a short original text shipped with this folder.

The functions below are copied unchanged from the chapter notebook ch05.ipynb
(their home); a test checks that the copies stay identical.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import tiktoken
import torch
from downloads import DownloadError, cache_gpt2_tokenizer_files, download_file
from matplotlib.ticker import MaxNLocator
from previous_chapters import GPT_CONFIG_124M, GPTModel, create_dataloader_v1, generate_text_simple

THE_VERDICT_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch02/01_main-chapter-code/the-verdict.txt"
)
THE_VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
SCRIPT_DIR = Path(__file__).resolve().parent
FALLBACK_TEXT = SCRIPT_DIR / "fallback-text.txt"

# A model small enough to train in seconds: for tests and quick experiments.
# It keeps GPT-2's vocabulary, so the same tokenizer and data work unchanged.
MODEL_CONFIGS = {
    "124M": GPT_CONFIG_124M,
    "tiny": {**GPT_CONFIG_124M, "emb_dim": 32, "n_heads": 2, "n_layers": 2},
}


def text_to_token_ids(text, tokenizer):
    """Encode `text` as a (1, num_tokens) tensor: a batch holding one sequence."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)


def token_ids_to_text(token_ids, tokenizer):
    """Decode a (1, num_tokens) or (num_tokens,) tensor of token ids to text."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


def calc_loss_batch(input_batch, target_batch, model, device):
    """Mean cross-entropy of the model's next-token predictions on one batch."""
    input_batch = input_batch.to(device)
    target_batch = target_batch.to(device)
    logits = model(input_batch)
    # cross_entropy wants (N, classes) and (N,): merge the batch and token dims
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


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


def evaluate_model(model, train_loader, val_loader, device, eval_iter):
    """Training and validation loss on `eval_iter` batches each, without dropout."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


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
                print(f"Epoch {epoch + 1} (step {global_step:06d}): "
                      f"train loss {train_loss:.3f}, val loss {val_loss:.3f}")

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen


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
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".part", delete=False) as tmp:
        temp_path = tmp.name
    try:
        torch.save(checkpoint, temp_path)
        os.replace(temp_path, path)
    except BaseException:
        os.remove(temp_path)
        raise


def load_checkpoint(path, model, optimizer=None, map_location="cpu"):
    """Load a checkpoint written by `save_checkpoint` into `model` (and `optimizer`).

    `weights_only=True` refuses files that would run code while loading. If the
    checkpoint was saved from a model with another configuration, the error
    lists every tensor that does not fit instead of PyTorch's generic message.
    Returns the checkpoint dictionary (e.g. for its "config").
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
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


def read_checkpoint_config(path):
    """The model configuration stored in a checkpoint by `save_checkpoint`."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "config" not in checkpoint:
        raise ValueError(f"checkpoint {path} has no stored model configuration")
    return checkpoint["config"]


def find_training_text(text_file, data_dir):
    """The file to train on: `text_file`, else the-verdict.txt, else the fallback text.

    the-verdict.txt is downloaded into `data_dir` once (or copied from the
    $LLMS_FROM_SCRATCH_MIRROR folder). Without network and mirror we still
    want a working run, so we say so in one line and use the shipped text.
    """
    if text_file is not None:
        return Path(text_file)
    try:
        return download_file(THE_VERDICT_URL, Path(data_dir) / "the-verdict.txt",
                             sha256=THE_VERDICT_SHA256)
    except DownloadError:
        print("Could not download the-verdict.txt (no network and no copy in "
              f"$LLMS_FROM_SCRATCH_MIRROR): training on {FALLBACK_TEXT.name} instead.")
        return FALLBACK_TEXT


def parse_args():
    parser = argparse.ArgumentParser(
        description="Pretrain a GPT model on a short text (chapter 5). "
                    "The defaults are the book's run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training text")
    parser.add_argument("--lr", type=float, default=4e-4, help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay")
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per batch")
    parser.add_argument("--context-length", type=int, default=256,
                        help="tokens per training sequence (and the model's context length)")
    parser.add_argument("--text-file", default=None,
                        help="train on this UTF-8 text file instead of the-verdict.txt")
    parser.add_argument("--data-dir", default=None,
                        help="where the downloaded the-verdict.txt is kept "
                             "(None: this script's folder)")
    parser.add_argument("--output-dir", default=".",
                        help="where to write model.pth and loss-plot.pdf")
    parser.add_argument("--seed", type=int, default=123, help="seed for weights and shuffling")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or mps (None: the best one available)")
    parser.add_argument("--eval-freq", type=int, default=5,
                        help="measure the losses every this many optimizer steps")
    parser.add_argument("--eval-iter", type=int, default=5,
                        help="batches per loss measurement")
    parser.add_argument("--model-config", choices=sorted(MODEL_CONFIGS), default="124M",
                        help="model size; 'tiny' trains in seconds (for tests)")
    parser.add_argument("--start-context", default="Every effort moves you",
                        help="prompt for the samples printed after each epoch")
    return parser.parse_args()


def default_device():
    return torch.device(
        "cuda" if torch.cuda.is_available()
        else "mps" if torch.backends.mps.is_available()
        else "cpu"
    )


def main():
    args = parse_args()
    device = torch.device(args.device) if args.device else default_device()
    print(f"torch {torch.__version__}, device: {device}")

    text_path = find_training_text(args.text_file, args.data_dir or SCRIPT_DIR)
    text = text_path.read_text(encoding="utf-8")
    print(f"Training text: {text_path.name}, {len(text):,} characters")
    split_idx = int(0.90 * len(text))  # 90% training, 10% validation

    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    model_config = {**MODEL_CONFIGS[args.model_config], "context_length": args.context_length}

    torch.manual_seed(args.seed)
    train_loader = create_dataloader_v1(
        text[:split_idx], batch_size=args.batch_size, max_length=args.context_length,
        stride=args.context_length, drop_last=True, shuffle=True, num_workers=0,
    )
    val_loader = create_dataloader_v1(
        text[split_idx:], batch_size=args.batch_size, max_length=args.context_length,
        stride=args.context_length, drop_last=False, shuffle=False, num_workers=0,
    )
    if len(train_loader) == 0 or len(val_loader) == 0:
        raise SystemExit(
            "The text is too short for this --context-length and --batch-size: "
            f"{len(train_loader)} training and {len(val_loader)} validation batches."
        )
    print(f"{len(train_loader)} training batches, {len(val_loader)} validation batches")

    torch.manual_seed(args.seed)
    model = GPTModel(model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr,
                                  weight_decay=args.weight_decay)

    start = time.perf_counter()
    train_losses, val_losses, tokens_seen = train_model_simple(
        model, train_loader, val_loader, optimizer, device,
        num_epochs=args.epochs, eval_freq=args.eval_freq, eval_iter=args.eval_iter,
        start_context=args.start_context, tokenizer=tokenizer,
    )
    minutes = (time.perf_counter() - start) / 60
    print(f"Training took {minutes:.2f} minutes.")

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(output_dir / "model.pth", model, optimizer, model_config)
    print(f"Saved the model and optimizer state to {output_dir / 'model.pth'}")

    if train_losses:
        epochs_seen = torch.linspace(0, args.epochs, len(train_losses))
        fig = plot_losses(epochs_seen, tokens_seen, train_losses, val_losses)
        fig.savefig(output_dir / "loss-plot.pdf")
        print(f"Saved the loss plot to {output_dir / 'loss-plot.pdf'}")


if __name__ == "__main__":
    main()
