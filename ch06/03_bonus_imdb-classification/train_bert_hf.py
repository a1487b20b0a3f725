"""Finetune a BERT-style encoder on the same IMDB splits (Hugging Face transformers).

    python train_bert_hf.py                          # DistilBERT, all layers, 1 epoch
    python train_bert_hf.py --model roberta          # RoBERTa base
    python train_bert_hf.py --model modernbert       # ModernBERT base (transformers >= 4.48)
    python train_bert_hf.py --model bert             # also the book's deberta-v3-base,
                                                     # modernbert-base, modernbert-large
    python train_bert_hf.py --model path/to/folder   # any saved encoder (works offline)
    python train_bert_hf.py --trainable-layers last_layer --use-attention-mask false

GPT reads left to right, so chapter 6 classifies from the last token. An
encoder such as BERT lets every token see the whole text and was pretrained to
fill in masked words; `AutoModelForSequenceClassification` puts a fresh
two-class head on its summary token. This script finetunes it on the CSV files
of download_prepare_dataset.py and prints the accuracy on the three splits and
the training time, like train_gpt.py.

The models come from the Hugging Face hub (downloaded once into its cache).
With no network, point --model at a folder written by `save_pretrained`, or
set HF_HUB_OFFLINE=1 to use what the cache already holds.
"""

import argparse
import os
import time
from pathlib import Path

import torch
from download_prepare_dataset import SPLIT_NAMES, read_split, split_paths
from previous_chapters import add_training_arguments
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    non_negative_int,
    positive_int,
    synchronize,
)
from torch.utils.data import DataLoader
from tqdm import tqdm

# --model shortcuts: the hub names readers use (the book repository's among them)
HUB_MODELS = {
    "distilbert": "distilbert-base-uncased",
    "bert": "bert-base-uncased",
    "roberta": "FacebookAI/roberta-base",
    "deberta-v3-base": "microsoft/deberta-v3-base",
    "modernbert": "answerdotai/ModernBERT-base",
    "modernbert-base": "answerdotai/ModernBERT-base",
    "modernbert-large": "answerdotai/ModernBERT-large",
}

# The book repository's default learning rate for the encoders (a tenth of
# the 5e-5 that the GPT experiments use).
ENCODER_LEARNING_RATE = 5e-6


def load_encoder(name, num_labels=2):
    """Tokenizer and sequence classifier for a --model value (shortcut, hub name or folder)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = HUB_MODELS.get(name, name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels)
    except (OSError, ValueError) as err:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ValueError(f"cannot load {source}{offline}: {str(err).splitlines()[0]} "
                         "Without network access pass --model a folder written by "
                         "save_pretrained.") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def last_encoder_block(model):
    """The encoder's last layer: the last entry of its longest list of layers.

    DistilBERT keeps its layers in `transformer.layer`, BERT and RoBERTa in
    `encoder.layer`, ModernBERT in `layers`; the longest ModuleList inside
    the base model is that list in each of them.
    """
    lists = [module for module in model.base_model.modules()
             if isinstance(module, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no list of layers to finetune")
    return max(lists, key=len)[-1]


def set_trainable_layers(model, trainable_layers):
    """all: everything; last_block: the head and the last encoder layer; last_layer: the head.

    The head is whatever lies outside the pretrained base model (a pre-classifier
    and classifier in DistilBERT, a classification head in RoBERTa).
    """
    model.requires_grad_(trainable_layers == "all")
    base = {id(param) for param in model.base_model.parameters()}
    for param in model.parameters():
        if id(param) not in base:
            param.requires_grad = True
    if trainable_layers == "last_block":
        last_encoder_block(model).requires_grad_(True)
    return sum(param.numel() for param in model.parameters() if param.requires_grad)


def make_loader(texts, labels, tokenizer, batch_size, max_length, use_attention_mask=True,
                max_examples=0, shuffle=False):
    """Batches of tokenized texts, padded to the longest text in the batch, cut at `max_length`.

    `max_examples` (0: all) keeps only the first texts.
    """
    def collate(batch):
        encoded = tokenizer([text for text, _ in batch], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
        if not use_attention_mask:
            encoded.pop("attention_mask")
        encoded["labels"] = torch.tensor([label for _, label in batch])
        return encoded

    pairs = list(zip(texts, labels, strict=True))
    if max_examples:
        pairs = pairs[:max_examples]
    return DataLoader(pairs, batch_size=batch_size, shuffle=shuffle, collate_fn=collate)


def evaluate(model, loader, device):
    """Share of correctly classified texts."""
    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        for batch in tqdm(loader, desc="accuracy", leave=False):
            batch = {key: value.to(device) for key, value in batch.items()}
            labels = batch.pop("labels")
            correct += (model(**batch).logits.argmax(dim=-1) == labels).sum().item()
            seen += len(labels)
    return correct / max(seen, 1)


def finetune_encoder(model, train_loader, optimizer, device, num_epochs, log_every=50):
    """Plain finetuning: cross-entropy from the model's own loss, one step per batch."""
    step = 0
    for epoch in range(num_epochs):
        model.train()
        for batch in tqdm(train_loader, desc=f"epoch {epoch + 1}", leave=False):
            batch = {key: value.to(device) for key, value in batch.items()}
            optimizer.zero_grad()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            if step % log_every == 0:
                tqdm.write(f"Ep {epoch + 1} (Step {step:06d}): Train loss {loss.item():.3f}")
            step += 1
    return step


def true_or_false(text):
    """--use-attention-mask true|false (the book repository's spelling of a switch)."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def add_encoder_arguments(parser):
    """The options of train_bert_hf.py and train_bert_hf_spam.py: all but the data's."""
    parser.add_argument("--model", default="distilbert",
                        help=f"one of {', '.join(HUB_MODELS)}, a hub name, or a local folder")
    parser.add_argument("--trainable-layers", choices=("all", "last_block", "last_layer"),
                        default="all", help="what to finetune")
    parser.add_argument("--use-attention-mask", type=true_or_false, default="true",
                        help="true: padding is hidden from attention; false: it is not")
    parser.add_argument("--max-length", type=positive_int, default=256,
                        help="texts are cut to this many tokens")
    parser.add_argument("--max-examples", type=non_negative_int, default=0,
                        help="use only this many texts per split (0: all)")
    add_training_arguments(parser, num_epochs=1)
    parser.set_defaults(learning_rate=ENCODER_LEARNING_RATE)
    add_device_argument(parser)


def parse_args(argv=None):
    """The command line as plain values: (`finetune_and_evaluate`'s settings, the CSV paths)."""
    parser = ScriptArgumentParser(
        description="Finetune a BERT-style encoder (transformers) on the IMDB splits.")
    add_encoder_arguments(parser)
    parser.add_argument("--data-dir", default="imdb_data",
                        help="folder with train.csv, validation.csv and test.csv")
    args = parser.parse_args(argv)
    return vars(args), split_paths(args.data_dir, parser)


def main(settings, csv_paths):
    """Finetune the encoder on the three splits in `csv_paths` as `settings` says."""
    print(f"torch {torch.__version__}, device: {settings['device']}")
    finetune_and_evaluate(settings, csv_paths, Path(__file__).name)


def finetune_and_evaluate(settings, csv_paths, script_name):
    """Load the encoder, finetune it on the training CSV and print the three accuracies.

    `settings` is a dict of plain values with the names of `add_encoder_arguments`'
    options (what `parse_args` returns).
    """
    device, seed = settings["device"], settings["seed"]
    try:
        splits = {name: read_split(path)
                  for name, path in zip(SPLIT_NAMES, csv_paths, strict=True)}
        torch.manual_seed(seed)  # the new head's weights
        tokenizer, model = load_encoder(settings["model"])
    except (ValueError, ImportError, IndexError) as err:
        raise SystemExit(f"{script_name}: error: {err}") from None
    trainable = set_trainable_layers(model, settings["trainable_layers"])
    print(f"{type(model).__name__}: {trainable:,} trainable parameters")
    model.to(device)

    torch.manual_seed(seed)  # the shuffling
    loaders = {name: make_loader(texts, labels, tokenizer, settings["batch_size"],
                                 settings["max_length"], settings["use_attention_mask"],
                                 settings["max_examples"], shuffle=(name == "train"))
               for name, (texts, labels) in splits.items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=settings["learning_rate"])
    synchronize(device)
    start = time.perf_counter()
    finetune_encoder(model, loaders["train"], optimizer, device, settings["num_epochs"])
    synchronize(device)
    print(f"Training completed in {(time.perf_counter() - start) / 60:.2f} minutes.")
    for label, name in (("Training", "train"), ("Validation", "validation"), ("Test", "test")):
        print(f"{label} accuracy: {evaluate(model, loaders[name], device) * 100:.2f}%")


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(*parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()
