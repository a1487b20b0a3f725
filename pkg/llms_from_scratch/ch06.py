"""Chapter 6: finetuning a GPT model to classify text messages as spam or not spam.

Copied from the chapter's code (home: ch06/01_main-chapter-code/ch06.ipynb);
`tools/copy_forward.py` keeps every definition identical to its home. The loss
functions here are the classification ones (last token's logits), not chapter 5's.
"""

import hashlib
import zipfile
import zlib
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .downloads import atomic_write, download_file


# Copied from ch06/01_main-chapter-code/ch06.ipynb::SMS_SPAM_SHA256
SMS_SPAM_SHA256 = "edc1f2ca36319ca36c6f80fede2f6ae5f81335289352485f3924df077ec20266"


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
