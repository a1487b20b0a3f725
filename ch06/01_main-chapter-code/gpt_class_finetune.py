"""Chapter 6 summary: finetune GPT-2 to tell spam from normal text messages.

    python gpt_class_finetune.py               # the book's run: GPT-2 124M, 5 epochs
    python gpt_class_finetune.py --test-mode   # a tiny random model, a few examples (seconds)
    python gpt_class_finetune.py --help

It downloads the UCI SMS Spam Collection (or copies it from the folder named by
$LLMS_FROM_SCRATCH_MIRROR), balances and splits it into train.csv,
validation.csv and test.csv, loads OpenAI's pretrained GPT-2, replaces its
output layer by a two-class head, and finetunes the last transformer block,
the final layer norm and the head. It prints losses and accuracies as it
trains, the final accuracies on all three splits, and writes
review_classifier.pth (loadable with `torch.load(..., weights_only=True)`),
loss-plot.pdf and accuracy-plot.pdf to --output-dir.

The options --context-length, --trainable-layers and --trainable-token-pos
run the chapter's exercises 6.1, 6.2 and 6.3 (see exercise-solutions.ipynb).

The functions from download_and_unzip_spam_data to classify_review are copied
unchanged from the chapter notebook ch06.ipynb (their home); a test keeps the
copies identical.
"""

import argparse
import hashlib
import time
import zipfile
import zlib
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import tiktoken
import torch
from downloads import DownloadError, atomic_write, cache_gpt2_tokenizer_files, download_file
from previous_chapters import (
    GPT2_MODEL_SIZES,
    GPT_CONFIG_124M,
    GPTModel,
    download_and_load_gpt2,
    gpt_config_from_hparams,
    load_weights_into_gpt,
    save_checkpoint,
)
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    add_settings,
    exit_with_error,
    non_negative_float,
    positive_float,
    positive_int,
    refuse_to_replace,
    writable_folder,
)
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

# Copied from ch06/01_main-chapter-code/ch06.ipynb::SMS_SPAM_URL
SMS_SPAM_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
# sha256 of the extracted SMSSpamCollection file (zips of the same data differ)
# Copied from ch06/01_main-chapter-code/ch06.ipynb::SMS_SPAM_SHA256
SMS_SPAM_SHA256 = "edc1f2ca36319ca36c6f80fede2f6ae5f81335289352485f3924df077ec20266"

# Every released GPT-2 size reads 1,024 tokens at most.
GPT2_CONTEXT_LENGTH = 1024
# --test-mode: a tiny random model that trains in seconds, on a few examples.
TEST_MODE_CONFIG = {**GPT_CONFIG_124M, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
                    "drop_rate": 0.0, "qkv_bias": True}
TEST_MODE_EXAMPLES = 16  # per split
NUM_CLASSES = 2  # 0: not spam ("ham"), 1: spam
# What a run writes into --output-dir: replaced only with --overwrite.
OUTPUT_FILES = ("review_classifier.pth", "loss-plot.pdf", "accuracy-plot.pdf")


# Copied from ch06/01_main-chapter-code/ch06.ipynb::file_sha256
def file_sha256(path):
    """The sha256 hex digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Copied from ch06/01_main-chapter-code/ch06.ipynb::download_and_unzip_spam_data
def download_and_unzip_spam_data(url, zip_path, extracted_path, data_file_path):
    """Get the SMS Spam Collection into `data_file_path`; return that path.

    The zip is downloaded to `zip_path` with the course's download helper
    (mirror, backup, atomic), and its `SMSSpamCollection` member is written to
    `data_file_path` inside the folder `extracted_path`. We stream that one
    member ourselves instead of calling `extractall`: no name inside the
    archive ever becomes a path on disk (an archive cannot write outside
    the folder), and the data goes to a temporary file that is renamed only
    once its sha256 matches, so a damaged zip never leaves a half-written
    data file behind. Nothing is done when the file is already in place; a
    file there that differs from the published one is the reader's own,
    used as it is and never replaced.
    """
    data_file_path = Path(data_file_path)
    if data_file_path.is_file():
        if file_sha256(data_file_path) == SMS_SPAM_SHA256:
            print(f"{data_file_path} already exists. Skipping download and extraction.")
        else:
            print(f"Using {data_file_path} as it is: it differs from the published "
                  "SMSSpamCollection (delete it to get the published one).")
        return data_file_path

    zip_path = download_file(url, zip_path)
    Path(extracted_path).mkdir(parents=True, exist_ok=True)
    data_file_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(data_file_path, "wb") as tmp:  # renamed into place only at the end
        try:
            with zipfile.ZipFile(zip_path) as archive:
                members = [name for name in archive.namelist()
                           if name.rsplit("/", 1)[-1] == "SMSSpamCollection"]
                if not members:
                    raise ValueError(f"{zip_path} holds no SMSSpamCollection file")
                with archive.open(members[0]) as member:
                    for chunk in iter(lambda: member.read(1 << 20), b""):
                        tmp.write(chunk)
        except (zipfile.BadZipFile, EOFError, zlib.error, ValueError) as err:
            raise ValueError(f"{zip_path} is not a usable zip file ({err}); "
                             "delete it and run again to download it afresh") from None
        tmp.flush()
        if file_sha256(tmp.name) != SMS_SPAM_SHA256:
            raise ValueError(f"the SMSSpamCollection in {zip_path} is not the expected file "
                             "(sha256 mismatch); delete the zip and run again")
    print(f"File downloaded and saved as {data_file_path}")
    return data_file_path


# Copied from ch06/01_main-chapter-code/ch06.ipynb::create_balanced_dataset
def create_balanced_dataset(df):
    """As many "ham" rows as "spam" rows; the labels stay "ham" and "spam".

    The collection holds 4,825 normal messages and only 747 spam messages. We
    keep every spam message and a random sample (seeded, reproducible) of the
    same number of normal ones, so a classifier cannot do well by always
    answering "not spam".
    """
    unknown = set(df["Label"]) - {"ham", "spam"}
    if unknown:
        raise ValueError(f"unexpected labels {sorted(unknown)}: expected 'ham' and 'spam'")
    spam = df[df["Label"] == "spam"]
    ham_subset = df[df["Label"] == "ham"].sample(len(spam), random_state=123)
    return pd.concat([ham_subset, spam])


# Copied from ch06/01_main-chapter-code/ch06.ipynb::random_split
def random_split(df, train_frac, validation_frac):
    """Shuffle `df` (seeded) and cut it into training, validation and test parts.

    The first `train_frac` of the rows train the model, the next
    `validation_frac` tell us how training goes, and the rest stay unseen
    until the final test.
    """
    df = df.sample(frac=1, random_state=123).reset_index(drop=True)
    train_end = int(len(df) * train_frac)
    validation_end = train_end + int(len(df) * validation_frac)
    return df[:train_end], df[train_end:validation_end], df[validation_end:]


# Copied from ch06/01_main-chapter-code/ch06.ipynb::SpamDataset
class SpamDataset(Dataset):
    """Text messages from a CSV file (columns Label and Text) as token ids.

    A batch must be a rectangle, so every message is padded with
    `pad_token_id` (GPT-2's <|endoftext|>) to the same length: to the longest
    message in this file when `max_length` is None, or else to `max_length`,
    cutting longer messages off. Validation and test sets use the training
    set's `max_length`, so the model sees inputs of one shape throughout.
    """

    def __init__(self, csv_file, tokenizer, max_length=None, pad_token_id=50256):
        # keep_default_na=False: a message reading "NA" stays text, not a NaN
        self.data = pd.read_csv(csv_file, keep_default_na=False)
        missing = [column for column in ("Label", "Text") if column not in self.data.columns]
        if missing:
            raise ValueError(f"{csv_file} lacks the column(s) {', '.join(missing)}: "
                             "expected a header with Label and Text")
        self.encoded_texts = [tokenizer.encode(text) for text in self.data["Text"]]

        if max_length is None:
            self.max_length = self._longest_encoded_length()
        else:
            self.max_length = max_length
            self.encoded_texts = [ids[:max_length] for ids in self.encoded_texts]

        self.encoded_texts = [ids + [pad_token_id] * (self.max_length - len(ids))
                              for ids in self.encoded_texts]

    def __getitem__(self, index):
        return (torch.tensor(self.encoded_texts[index], dtype=torch.long),
                torch.tensor(self.data.iloc[index]["Label"], dtype=torch.long))

    def __len__(self):
        return len(self.data)

    def _longest_encoded_length(self):
        return max(len(ids) for ids in self.encoded_texts)


# Copied from ch06/01_main-chapter-code/ch06.ipynb::calc_accuracy_loader
def calc_accuracy_loader(data_loader, model, device, num_batches=None):
    """Share of correctly classified examples in the first `num_batches` batches.

    The prediction is the class with the larger logit at the last position:
    thanks to the causal mask, the last token is the only one that has seen
    the whole message.
    """
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    model.eval()
    correct_predictions, num_examples = 0, 0
    progress = tqdm(data_loader, total=num_batches, desc="accuracy", leave=False)
    for i, (input_batch, target_batch) in enumerate(progress):
        if i >= num_batches:
            break
        input_batch, target_batch = input_batch.to(device), target_batch.to(device)
        with torch.no_grad():
            logits = model(input_batch)[:, -1, :]
        predicted_labels = torch.argmax(logits, dim=-1)
        num_examples += predicted_labels.shape[0]
        correct_predictions += (predicted_labels == target_batch).sum().item()
    progress.close()
    return correct_predictions / num_examples


# Copied from ch06/01_main-chapter-code/ch06.ipynb::calc_loss_batch
def calc_loss_batch(input_batch, target_batch, model, device):
    """Cross-entropy of the class logits at the last position of each sequence."""
    input_batch = input_batch.to(device)
    target_batch = target_batch.to(device)
    logits = model(input_batch)[:, -1, :]  # (batch, classes): one prediction per message
    return torch.nn.functional.cross_entropy(logits, target_batch)


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


# Copied from ch06/01_main-chapter-code/ch06.ipynb::train_classifier_simple
def train_classifier_simple(model, train_loader, val_loader, optimizer, device, num_epochs,
                            eval_freq, eval_iter):
    """Finetune `model` as a classifier; return the loss and accuracy history.

    The loop of chapter 5 with two changes: we count examples (messages)
    seen instead of tokens, and after each epoch we measure the training and
    validation accuracy on `eval_iter` batches. Returns (train_losses,
    val_losses, train_accs, val_accs, examples_seen).
    """
    train_losses, val_losses, train_accs, val_accs = [], [], [], []
    examples_seen, global_step = 0, -1

    for epoch in range(num_epochs):
        model.train()  # dropout on (calc_accuracy_loader switched it off)
        for input_batch, target_batch in tqdm(train_loader, desc=f"epoch {epoch + 1}",
                                              leave=False):
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            examples_seen += input_batch.shape[0]
            global_step += 1

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(
                    model, train_loader, val_loader, device, eval_iter
                )
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                tqdm.write(f"Ep {epoch + 1} (Step {global_step:06d}): "
                           f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")

        train_accuracy = calc_accuracy_loader(train_loader, model, device, num_batches=eval_iter)
        val_accuracy = calc_accuracy_loader(val_loader, model, device, num_batches=eval_iter)
        tqdm.write(f"Training accuracy: {train_accuracy * 100:.2f}% | "
                   f"Validation accuracy: {val_accuracy * 100:.2f}%")
        train_accs.append(train_accuracy)
        val_accs.append(val_accuracy)

    return train_losses, val_losses, train_accs, val_accs, examples_seen


# Copied from ch06/01_main-chapter-code/ch06.ipynb::plot_values
def plot_values(epochs_seen, examples_seen, train_values, val_values, label="loss"):
    """Plot training and validation values against epochs and examples seen."""
    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_values, label=f"Training {label}")
    ax1.plot(epochs_seen, val_values, linestyle="-.", label=f"Validation {label}")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(label.capitalize())
    ax1.legend()

    # A second x-axis for the same points, placed by examples seen; the
    # invisible plot only sets its range so the two scales line up.
    ax2 = ax1.twiny()
    ax2.plot(examples_seen, train_values, alpha=0)
    ax2.set_xlabel("Examples seen")

    fig.tight_layout()
    return fig


# Copied from ch06/01_main-chapter-code/ch06.ipynb::classify_review
def classify_review(text, model, tokenizer, device, max_length=None, pad_token_id=50256):
    """Return "spam" or "not spam" for `text`, as the finetuned `model` sees it.

    The text is prepared like the training data: cut to `max_length` tokens
    (never more than the model's context) and padded to `max_length` with
    `pad_token_id`. With `max_length=None` it is only cut to the context.
    """
    input_ids = tokenizer.encode(text)
    if not input_ids:
        raise ValueError("cannot classify an empty text")
    supported_context_length = model.pos_emb.weight.shape[0]
    if max_length is None:
        max_length = min(len(input_ids), supported_context_length)
    max_length = min(max_length, supported_context_length)
    input_ids = input_ids[:max_length]
    input_ids += [pad_token_id] * (max_length - len(input_ids))

    model.eval()
    input_tensor = torch.tensor(input_ids, device=device).unsqueeze(0)  # a batch of one
    with torch.no_grad():
        logits = model(input_tensor)[:, -1, :]
    predicted_label = torch.argmax(logits, dim=-1).item()
    return "spam" if predicted_label == 1 else "not spam"


def classify_from_first_token(model):
    """Make `model` put its first position's output last (exercise 6.3).

    Every function above reads the logits at the last position. A forward
    hook that returns only the first position's outputs turns them, unchanged,
    into functions that classify from the first token. The model's weights
    and state dict stay as they are.
    """
    return model.register_forward_hook(lambda module, inputs, output: output[:, :1, :])


def prepare_classifier(model, emb_dim, trainable_layers="last_block"):
    """Give `model` a two-class head; train only the parts `trainable_layers` says.

    "last_block" (the book's choice) leaves the last transformer block, the
    final layer norm and the new head trainable; "all" finetunes everything.
    The new head is seeded, so runs are reproducible.
    """
    for param in model.parameters():
        param.requires_grad = trainable_layers == "all"
    torch.manual_seed(123)
    model.out_head = torch.nn.Linear(in_features=emb_dim, out_features=NUM_CLASSES)
    for param in model.trf_blocks[-1].parameters():
        param.requires_grad = True
    for param in model.final_norm.parameters():
        param.requires_grad = True
    return model


def write_splits(data_file_path, data_dir):
    """Balance and split the collection; write train/validation/test CSVs atomically."""
    df = pd.read_csv(data_file_path, sep="\t", header=None, names=["Label", "Text"])
    balanced_df = create_balanced_dataset(df)
    balanced_df["Label"] = balanced_df["Label"].map({"ham": 0, "spam": 1})
    splits = random_split(balanced_df, 0.7, 0.1)
    paths = []
    for name, split in zip(("train", "validation", "test"), splits, strict=True):
        path = Path(data_dir) / f"{name}.csv"
        with atomic_write(path, newline="") as f:
            split.to_csv(f, index=None)
        paths.append(path)
    return paths


def make_loaders(csv_paths, tokenizer, context_length, batch_size, seed, test_mode=False):
    """Loaders for the three splits, and the length messages are padded to.

    `context_length` is a --context-length value: longest_training_example,
    model_context_length or a number of tokens.
    """
    if context_length == "longest_training_example":
        max_length = None
    elif context_length == "model_context_length":
        max_length = GPT2_CONTEXT_LENGTH
    else:
        max_length = int(context_length)
    train_dataset = SpamDataset(csv_paths[0], tokenizer, max_length=max_length)
    datasets = [train_dataset] + [SpamDataset(path, tokenizer, max_length=train_dataset.max_length)
                                  for path in csv_paths[1:]]
    print(f"Messages padded to {train_dataset.max_length} tokens")
    if test_mode:
        datasets = [Subset(d, range(min(TEST_MODE_EXAMPLES, len(d)))) for d in datasets]

    if len(datasets[0]) < batch_size:  # drop_last would leave no batch to train on
        raise ValueError(f"argument --batch-size: {batch_size} is more than the "
                         f"{len(datasets[0])} training messages (0 training batches)")
    torch.manual_seed(seed)  # the training loader's shuffling
    loaders = [DataLoader(d, batch_size=batch_size, shuffle=(i == 0), drop_last=(i == 0))
               for i, d in enumerate(datasets)]
    return loaders, train_dataset.max_length


def load_base_model(model_size, models_dir, seed, test_mode=False):
    """OpenAI's GPT-2 (or, in test mode, a tiny random GPT seeded with `seed`) and its config."""
    if test_mode:
        torch.manual_seed(seed)
        return GPTModel(TEST_MODE_CONFIG), dict(TEST_MODE_CONFIG)
    settings, params = download_and_load_gpt2(model_size, models_dir)
    config = gpt_config_from_hparams(settings)
    model = GPTModel(config)
    load_weights_into_gpt(model, params)
    return model, config


def save_plot(fig, path):
    """Save a matplotlib figure all at once (atomic_write): never a half-written plot."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or None)
    plt.close(fig)


def context_length_arg(value):
    """--context-length: one of the two named choices or a positive token count."""
    if value in ("longest_training_example", "model_context_length"):
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= GPT2_CONTEXT_LENGTH:
        raise argparse.ArgumentTypeError(
            f"expected longest_training_example, model_context_length or a number "
            f"from 1 to {GPT2_CONTEXT_LENGTH}, got {value!r}")
    return value


# Every setting, once, as `add_settings` reads it: key: (flag, kind, default, help).
# parse_args returns a dict of these keys (the book's names), plus "device".
SETTINGS = {
    "model_size": ("--model-size", GPT2_MODEL_SIZES, "124M", "which OpenAI GPT-2 to finetune"),
    "num_epochs": ("--epochs", positive_int, 5, "passes over the data"),
    "learning_rate": ("--lr", positive_float, 5e-5, "AdamW learning rate"),
    "weight_decay": ("--weight-decay", non_negative_float, 0.1, "AdamW weight decay"),
    "batch_size": ("--batch-size", positive_int, 8, "messages per batch"),
    "seed": ("--seed", int, 123, "seed for data shuffling (and the test-mode model)"),
    "eval_freq": ("--eval-freq", positive_int, 50,
                  "measure the losses every this many optimizer steps"),
    "eval_iter": ("--eval-iter", positive_int, 5,
                  "batches per loss and accuracy measurement during training"),
    "output_dir": ("--output-dir", writable_folder, ".",
                   "where to write review_classifier.pth and the plots"),
    "data_dir": ("--data-dir", writable_folder, "sms_spam_collection",
                 "where the data is downloaded and the CSV splits are written"),
    "models_dir": ("--models-dir", str, "gpt2",
                   "folder that holds (or receives) OpenAI's GPT-2 files"),
    "context_length": ("--context-length", context_length_arg, "longest_training_example",
                       "pad messages to the longest training message, to the model's context "
                       "(model_context_length, exercise 6.1) or to a number of tokens"),
    "trainable_layers": ("--trainable-layers", ("last_block", "all"), "last_block",
                         "finetune the last block, final norm and head, or all layers "
                         "(exercise 6.2)"),
    "trainable_token_pos": ("--trainable-token-pos", ("last", "first"), "last",
                            "classify from the last or the first token's output (exercise 6.3)"),
    "overwrite": ("--overwrite", bool, False,
                  "replace the model and plots of an earlier run in --output-dir"),
    "test_mode": ("--test-mode", bool, False,
                  "a tiny random-weight GPT (no download) on a few examples, for tests"),
}


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it."""
    parser = ScriptArgumentParser(
        prog=Path(__file__).name,  # also when called from a notebook
        description="Finetune OpenAI's GPT-2 to classify text messages as spam or not "
                    "(chapter 6). The defaults are the book's run.",
    )
    add_settings(parser, SETTINGS)
    add_device_argument(parser)
    settings = vars(parser.parse_args(argv))
    refuse_to_replace(parser, settings["output_dir"], OUTPUT_FILES, settings["overwrite"])
    return settings


def main(settings):
    """Finetune as `settings` (parse_args's dict) says; save the model and the plots.

    Returns (train_losses, val_losses, train_accs, val_accs, examples_seen).
    """
    return finetune_and_save(*prepare_run(settings), settings)


def prepare_run(settings):
    """The loaders and GPT-2 with its two-class head: everything a bad input can stop.

    Returns (model, config, loaders); the config is what load-finetuned-model.ipynb
    needs to rebuild the model and prepare texts.
    """
    device, data_dir = settings["device"], settings["data_dir"]
    print(f"torch {torch.__version__}, device: {device}")
    settings["output_dir"].mkdir(parents=True, exist_ok=True)  # checked by parse_args

    data_file = download_and_unzip_spam_data(
        SMS_SPAM_URL, data_dir / "sms_spam_collection.zip", data_dir,
        data_dir / "SMSSpamCollection.tsv")
    csv_paths = write_splits(data_file, data_dir)
    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    loaders, max_length = make_loaders(csv_paths, tokenizer, settings["context_length"],
                                       settings["batch_size"], settings["seed"],
                                       settings["test_mode"])
    model, config = load_base_model(settings["model_size"], settings["models_dir"],
                                    settings["seed"], settings["test_mode"])
    print(f"{len(loaders[0])} training, {len(loaders[1])} validation and "
          f"{len(loaders[2])} test batches")

    prepare_classifier(model, config["emb_dim"], settings["trainable_layers"])
    if settings["trainable_token_pos"] == "first":
        classify_from_first_token(model)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"Trainable parameters: {trainable:,}")
    return model, {**config, "num_classes": NUM_CLASSES, "max_length": max_length}, loaders


def finetune_and_save(model, config, loaders, settings):
    """Train, print the three accuracies, then save the model and the plots."""
    train_loader, val_loader, test_loader = loaders
    device, num_epochs = settings["device"], settings["num_epochs"]
    # as in ch06.ipynb: the same seed right before training, so the shuffling of the
    # training data does not depend on what drew random numbers before
    torch.manual_seed(settings["seed"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"],
                                  weight_decay=settings["weight_decay"])
    start = time.perf_counter()
    history = train_classifier_simple(
        model, train_loader, val_loader, optimizer, device, num_epochs=num_epochs,
        eval_freq=settings["eval_freq"], eval_iter=settings["eval_iter"])
    print(f"Training completed in {(time.perf_counter() - start) / 60:.2f} minutes.")
    for name, loader in (("Training", train_loader), ("Validation", val_loader),
                         ("Test", test_loader)):
        print(f"{name} accuracy: {calc_accuracy_loader(loader, model, device) * 100:.2f}%")

    output_dir = settings["output_dir"]
    save_checkpoint(output_dir / "review_classifier.pth", model, config=config)
    print(f"Saved the finetuned model to {output_dir / 'review_classifier.pth'}")
    train_losses, val_losses, train_accs, val_accs, examples_seen = history
    for label, train_values, val_values in (("loss", train_losses, val_losses),
                                            ("accuracy", train_accs, val_accs)):
        epochs_seen = torch.linspace(0, num_epochs, len(train_values))
        examples = torch.linspace(0, examples_seen, len(train_values))
        save_plot(plot_values(epochs_seen, examples, train_values, val_values, label),
                  output_dir / f"{label}-plot.pdf")
    print(f"Saved loss-plot.pdf and accuracy-plot.pdf to {output_dir}")
    return history


def run_from_command_line(argv=None):
    """Parse, prepare (a bad input exits 2 with one line), then train and save."""
    settings = parse_args(argv)
    try:
        run = prepare_run(settings)
    except (ValueError, ImportError, DownloadError) as err:
        # one line; a DownloadError's several say what was tried and where to put the file
        exit_with_error(str(err) if isinstance(err, DownloadError) else str(err).splitlines()[0])
    finetune_and_save(*run, settings)


if __name__ == "__main__":
    run_from_command_line()
