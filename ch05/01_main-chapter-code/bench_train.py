"""Measure the training speed of `train_model_simple` (tokens per second).

    python bench_train.py            # one epoch of the book's run, both loops
    python bench_train.py --epochs 2 --repeats 3

It sets up the book's run (GPT-2 124M with a 256-token context, AdamW, seed
123, batches of 2 from the-verdict.txt) and times two implementations of the
same computation from the same starting point:

- `train_model_simple` from this chapter, and
- `plain_training_loop`, written here the most direct way (no helper
  functions), as a yardstick.

Both must produce exactly the same losses (the script checks it), so the
comparison is fair. Tokens per second counts the training tokens only; the
time includes everything the loop does (evaluations and samples too). The
numbers depend on the machine; this script prints which one it ran on.
"""

import itertools
import os
import platform
import time
from pathlib import Path

import tiktoken
import torch
from downloads import cache_gpt2_tokenizer_files, download_file
from gpt_utils import THE_VERDICT_SHA256, THE_VERDICT_URL, train_model_simple, training_progress
from previous_chapters import GPT_CONFIG_124M, GPTModel, create_dataloader_v1, generate_text_simple
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int, synchronize

BOOK_CONFIG = {**GPT_CONFIG_124M, "context_length": 256}
# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::SCRIPT_DIR
SCRIPT_DIR = Path(__file__).resolve().parent


def book_loaders(text):
    split_idx = int(0.90 * len(text))
    train_loader = create_dataloader_v1(text[:split_idx], batch_size=2, max_length=256,
                                        stride=256, drop_last=True, shuffle=True)
    val_loader = create_dataloader_v1(text[split_idx:], batch_size=2, max_length=256,
                                      stride=256, drop_last=False, shuffle=False)
    return train_loader, val_loader


def plain_training_loop(model, train_loader, val_loader, optimizer, num_epochs, tokenizer,
                        device="cpu"):
    """The book's training computation written out in one function."""
    cross_entropy = torch.nn.functional.cross_entropy
    train_losses, val_losses, tokens_seen, tokens, step = [], [], [], 0, -1
    for _ in range(num_epochs):
        model.train()
        for inputs, targets in train_loader:
            inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad()
            loss = cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
            loss.backward()
            optimizer.step()
            tokens += inputs.numel()
            step += 1
            if step % 5 == 0:
                model.eval()
                with torch.no_grad():
                    for loader, history in ((train_loader, train_losses),
                                            (val_loader, val_losses)):
                        batch_losses = [
                            cross_entropy(model(x.to(device)).flatten(0, 1),
                                          y.to(device).flatten()).item()
                            for x, y in itertools.islice(loader, 5)
                        ]
                        history.append(sum(batch_losses) / len(batch_losses))
                tokens_seen.append(tokens)
                model.train()
        model.eval()
        prompt = torch.tensor([tokenizer.encode("Every effort moves you")], device=device)
        sample = generate_text_simple(model, prompt, max_new_tokens=50, context_size=256)
        print("  sample:", tokenizer.decode(sample[0].tolist()).replace("\n", " "))
    return train_losses, val_losses, tokens_seen


def time_run(name, text, tokenizer, num_epochs, device):
    """Train from the book's starting point; return (seconds, tokens seen, losses)."""
    torch.manual_seed(123)
    train_loader, val_loader = book_loaders(text)
    torch.manual_seed(123)
    model = GPTModel(BOOK_CONFIG).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)

    print(f"{name}:")
    # The bar (stderr) adds one counter update per step to both loops alike.
    with training_progress(optimizer, num_epochs * len(train_loader), 2 * 256):
        synchronize(device)
        start = time.perf_counter()
        if name == "train_model_simple":
            history = train_model_simple(
                model, train_loader, val_loader, optimizer, device, num_epochs=num_epochs,
                eval_freq=5, eval_iter=5, start_context="Every effort moves you",
                tokenizer=tokenizer,
            )
        else:
            history = plain_training_loop(model, train_loader, val_loader, optimizer,
                                          num_epochs, tokenizer, device)
        synchronize(device)
        seconds = time.perf_counter() - start
    return seconds, num_epochs * len(train_loader) * 2 * 256, history


def parse_args(argv=None):
    """The command line as a plain dict: epochs, repeats and device (a torch.device)."""
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=1, help="epochs per timed run")
    parser.add_argument("--repeats", type=positive_int, default=1,
                        help="timed runs per implementation (the best one is reported)")
    add_device_argument(parser)
    return vars(parser.parse_args(argv))


def main(settings):
    """Time both loops as `settings` (parse_args's dict) says and print the table."""
    device = settings["device"]
    print(f"torch {torch.__version__}, device: {device}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")

    text = download_file(THE_VERDICT_URL, SCRIPT_DIR / "the-verdict.txt",
                         sha256=THE_VERDICT_SHA256).read_text(encoding="utf-8")
    cache_gpt2_tokenizer_files()
    tokenizer = tiktoken.get_encoding("gpt2")

    best, histories = {}, {}
    for _ in range(settings["repeats"]):
        for name in ("plain_training_loop", "train_model_simple"):
            seconds, tokens, histories[name] = time_run(name, text, tokenizer,
                                                        settings["epochs"], device)
            best[name] = min(best.get(name, seconds), seconds)

    identical = histories["plain_training_loop"] == histories["train_model_simple"]
    print(f"\nIdentical losses and token counts: {identical}")
    print(f"{'implementation':<22}{'best seconds':>14}{'tokens/s':>12}")
    for name, seconds in best.items():
        print(f"{name:<22}{seconds:>14.1f}{tokens / seconds:>12.1f}")
    if not identical:
        raise SystemExit("the two loops disagree: the comparison is not valid")


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()
