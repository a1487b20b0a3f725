"""Chapter 7 as one script: finetune GPT-2 to follow instructions.

    python gpt_instruction_finetuning.py                     # the book's run: GPT-2 355M, 2 epochs
    python gpt_instruction_finetuning.py --model-size 124M   # smaller and faster
    python gpt_instruction_finetuning.py --test-mode         # seconds: a tiny random model
    python gpt_instruction_finetuning.py --help

It downloads the 1,100-entry instruction dataset (or copies it from the folder
named by $LLMS_FROM_SCRATCH_MIRROR), splits it 85/10/5 into training, test and
validation entries, loads OpenAI's pretrained GPT-2, finetunes it on the
prompts and responses (padding ignored in the loss), and writes three files to
--output-dir: the finetuned model (`gpt2-medium355M-sft.pth` for 355M), the
test entries with the model's answers under "model_response"
(`instruction-data-with-response.json`, the input of `ollama_evaluate.py`), and
a plot of the losses (`loss-plot.pdf`).

The definitions below are copied unchanged from the chapter notebook ch07.ipynb
(their home); a test checks that the copies stay identical.
"""

import argparse
import json
import re
import sys
import time
from functools import partial
from pathlib import Path

import tiktoken
import torch
from downloads import (MIRROR_ENV_VAR, DownloadError, atomic_write, cache_gpt2_tokenizer_files,
                       published_file)
from gpt_download import GPT2_MODEL_SIZES
from previous_chapters import (
    GPTModel,
    calc_loss_loader,
    generate,
    gpt_config_from_hparams,
    load_openai_gpt2,
    plot_losses,
    save_checkpoint,
    text_to_token_ids,
    token_ids_to_text,
    train_model_simple,
)
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    add_settings,
    non_negative_float,
    positive_float,
    positive_int,
    refuse_to_replace,
    writable_folder,
)
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

# Copied from ch07/01_main-chapter-code/ch07.ipynb::INSTRUCTION_DATA_URL
INSTRUCTION_DATA_URL = (
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
    "ch07/01_main-chapter-code/instruction-data.json"
)
# Copied from ch07/01_main-chapter-code/ch07.ipynb::INSTRUCTION_DATA_SHA256
INSTRUCTION_DATA_SHA256 = "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"

# The names the book gives the four GPT-2 sizes (they also name the saved model).
GPT2_MODEL_NAMES = {
    "124M": "gpt2-small (124M)",
    "355M": "gpt2-medium (355M)",
    "774M": "gpt2-large (774M)",
    "1558M": "gpt2-xl (1558M)",
}

# --test-mode: a tiny random model with GPT-2's vocabulary, so the tokenizer,
# data and code paths are the real ones, but everything runs in seconds.
TEST_MODE_CONFIG = {
    "vocab_size": 50257, "context_length": 256, "emb_dim": 32, "n_heads": 2,
    "n_layers": 2, "drop_rate": 0.0, "qkv_bias": True,
}
TEST_MODE_ENTRIES = 8
TEST_MODE_MAX_NEW_TOKENS = 8

RESPONSES_FILE = "instruction-data-with-response.json"
LOSS_PLOT_FILE = "loss-plot.pdf"


# Copied from ch07/01_main-chapter-code/ch07.ipynb::download_and_load_file
def download_and_load_file(file_path, url, sha256=None):
    """Fetch the JSON file at `url` into `file_path` once, then parse it.

    The course's download helper skips the download when the file is already
    there, copies it from $LLMS_FROM_SCRATCH_MIRROR when that folder holds it,
    and checks the file's SHA-256 when we know it. A file of that name that
    differs from the published one is the reader's own: used, never replaced.
    """
    published_file(url, file_path, sha256=sha256)
    with open(file_path, encoding="utf-8") as file:
        return json.load(file)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::format_input
def format_input(entry):
    """The Alpaca-style prompt for one entry: a preamble, the instruction, the input.

    The "### Input:" section appears only when the entry has an input. The
    answer ("\\n\\n### Response:\\n" and the output) is appended separately, so
    the same prompt serves for training texts and for asking the model.
    """
    instruction_text = (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


# Copied from ch07/01_main-chapter-code/ch07.ipynb::split_instruction_data
def split_instruction_data(data, train_frac=0.85, test_frac=0.10):
    """Split `data` in order into training, test and validation entries.

    The first 85% train, the next 10% test, the rest (5%) validate; returned
    as `(train_data, test_data, val_data)`, the order of the slices.
    """
    train_portion = int(len(data) * train_frac)
    test_portion = int(len(data) * test_frac)
    train_data = data[:train_portion]
    test_data = data[train_portion:train_portion + test_portion]
    val_data = data[train_portion + test_portion:]
    return train_data, test_data, val_data


# Copied from ch07/01_main-chapter-code/ch07.ipynb::InstructionDataset
class InstructionDataset(Dataset):
    """Instruction entries as lists of token ids: prompt, "### Response:", answer.

    Every text is tokenized once here, not again in every epoch.
    """

    def __init__(self, data, tokenizer):
        self.data = data
        self.encoded_texts = []
        for entry in data:
            full_text = format_input(entry) + f"\n\n### Response:\n{entry['output']}"
            self.encoded_texts.append(tokenizer.encode(full_text))

    def __getitem__(self, index):
        return self.encoded_texts[index]

    def __len__(self):
        return len(self.data)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::custom_collate_draft_1
def custom_collate_draft_1(batch, pad_token_id=50256, device="cpu"):
    """First draft: pad every sequence of token ids to the same length.

    Each sequence gets at least one end-of-text token (50256, which also
    serves as padding); the batch is as long as its longest sequence.
    """
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_lst = []
    for item in batch:
        padded = item + [pad_token_id] * (batch_max_length - len(item))
        inputs_lst.append(torch.tensor(padded[:-1]))  # drop the one extra token
    return torch.stack(inputs_lst).to(device)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::custom_collate_draft_2
def custom_collate_draft_2(batch, pad_token_id=50256, device="cpu"):
    """Second draft: padded inputs and the targets, the inputs shifted by one."""
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_lst, targets_lst = [], []
    for item in batch:
        padded = item + [pad_token_id] * (batch_max_length - len(item))
        inputs_lst.append(torch.tensor(padded[:-1]))
        targets_lst.append(torch.tensor(padded[1:]))  # the next token at each position
    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::custom_collate_fn
def custom_collate_fn(batch, pad_token_id=50256, ignore_index=-100, allowed_max_length=None,
                      device="cpu"):
    """Final version: inputs and targets, padding after the first end-of-text ignored.

    The first end-of-text target stays, so the model learns to stop after its
    answer; the padding targets after it become `ignore_index`, which
    cross-entropy skips. We find the padding by position (everything after the
    sequence's own tokens), so a 50256 inside a text would still count.
    `allowed_max_length` truncates long sequences.
    """
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_lst, targets_lst = [], []
    for item in batch:
        padded = item + [pad_token_id] * (batch_max_length - len(item))
        inputs = torch.tensor(padded[:-1])
        targets = torch.tensor(padded[1:])
        # targets[len(item) - 1] is the first end-of-text token: keep it
        targets[len(item):] = ignore_index
        if allowed_max_length is not None:
            inputs = inputs[:allowed_max_length]
            targets = targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)
    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::create_instruction_loaders
def create_instruction_loaders(train_data, val_data, test_data, tokenizer, collate_fn,
                               batch_size=8, num_workers=0, dataset_class=InstructionDataset):
    """DataLoaders for the three splits; only the training one shuffles and drops
    its last incomplete batch (so every training step sees `batch_size` entries).

    Seed the global RNG before iterating: the training loader draws its order
    from it at the start of every epoch.
    """
    def loader(data, training):
        return DataLoader(dataset_class(data, tokenizer), batch_size=batch_size,
                          collate_fn=collate_fn, shuffle=training, drop_last=training,
                          num_workers=num_workers)
    return loader(train_data, True), loader(val_data, False), loader(test_data, False)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::extract_response
def extract_response(response_text, input_text):
    """The model's answer in `response_text` (the prompt `input_text` plus what it generated).

    We keep what follows the prompt, after the first "### Response:" header
    and before an end-of-text marker, without surrounding whitespace.
    """
    generated = response_text[len(input_text):]
    header, found, answer = generated.partition("### Response:")
    answer = answer if found else header
    return answer.split("<|endoftext|>")[0].strip()


# Copied from ch07/01_main-chapter-code/ch07.ipynb::generate_test_responses
def generate_test_responses(model, test_data, tokenizer, device, max_new_tokens=256,
                            format_prompt=format_input, extract=extract_response):
    """Add the model's greedy answer to every entry under "model_response"; return them.

    Generation stops at the end-of-text token (50256), which finetuning taught
    the model to produce after its answer. `format_prompt` and `extract` are
    the prompt style's two halves (exercise 7.1 swaps in another style).
    """
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    for entry in tqdm(test_data, desc="Generating responses", file=sys.stderr):
        input_text = format_prompt(entry)
        token_ids = generate(
            model=model, idx=text_to_token_ids(input_text, tokenizer).to(device),
            max_new_tokens=max_new_tokens, context_size=context_size, eos_id=50256,
        )
        entry["model_response"] = extract(token_ids_to_text(token_ids, tokenizer), input_text)
    return test_data


# Copied from ch07/01_main-chapter-code/ch07.ipynb::write_json_atomically
def write_json_atomically(path, data):
    """Write JSON all at once (downloads.atomic_write): never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(data, f, ensure_ascii=False)


# Copied from ch07/01_main-chapter-code/ch07.ipynb::finetuned_model_file
def finetuned_model_file(choose_model):
    """The book's file name for a finetuned model, e.g. "gpt2-medium355M-sft.pth"."""
    return f"{re.sub(r'[ ()]', '', choose_model)}-sft.pth"


# Every setting, once, as `add_settings` reads it: key: (flag, kind, default, help).
# parse_args returns a dict of these keys, plus "device"; exercise_experiments.py
# adds its own entries.
SETTINGS = {
    "model_size": ("--model-size", GPT2_MODEL_SIZES, "355M", "which OpenAI GPT-2 to finetune"),
    "models_dir": ("--models-dir", str, "gpt2", "folder that holds (or receives) GPT-2's files"),
    "data_dir": ("--data-dir", str, None,
                 "where the dataset's JSON file is kept (None: this script's folder)"),
    "output_dir": ("--output-dir", writable_folder, ".",
                   "where the model, responses and plot are written"),
    "num_epochs": ("--epochs", positive_int, 2, "passes over the training entries"),
    "learning_rate": ("--lr", positive_float, 5e-5, "AdamW learning rate"),
    "weight_decay": ("--weight-decay", non_negative_float, 0.1, "AdamW weight decay"),
    "batch_size": ("--batch-size", positive_int, 8, "entries per batch"),
    "seed": ("--seed", int, 123, "seed for shuffling and dropout"),
    "eval_freq": ("--eval-freq", positive_int, 5, "measure the losses every this many steps"),
    "eval_iter": ("--eval-iter", positive_int, 5, "batches per loss measurement"),
    "max_new_tokens": ("--max-new-tokens", positive_int, 256,
                       "longest generated answer, in tokens"),
    "max_train_entries": ("--max-train-entries", positive_int, None,
                          "finetune on only the first N training entries (None: all)"),
    "max_test_entries": ("--max-test-entries", positive_int, None,
                         "generate answers for only the first N test entries (None: all)"),
    "overwrite": ("--overwrite", bool, False, "replace output files from an earlier run"),
    "test_mode": ("--test-mode", bool, False,
                  "a tiny random-weight model, 8 entries per split and at most 8 new tokens "
                  "per answer: runs in seconds (for tests)"),
}


def build_parser(description, settings=SETTINGS):
    """A parser for a SETTINGS table: this script's, or exercise_experiments.py's."""
    parser = ScriptArgumentParser(description=description)
    add_settings(parser, settings)
    add_device_argument(parser)
    return parser


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it."""
    parser = build_parser("Finetune GPT-2 to follow instructions (chapter 7). "
                          "The defaults are the book's run.")
    settings = vars(parser.parse_args(argv))
    refuse_to_replace(parser, settings["output_dir"],
                      output_files(settings["model_size"], settings["test_mode"]),
                      settings["overwrite"])
    return settings


def output_files(model_size, test_mode=False, suffix=""):
    """Names of the model, responses and plot files a run writes into --output-dir."""
    choose_model = "test-model" if test_mode else GPT2_MODEL_NAMES[model_size]
    model_file = finetuned_model_file(choose_model)
    if suffix:
        model_file = model_file.replace("-sft.pth", f"-sft-{suffix}.pth")
    stem = f"-{suffix}" if suffix else ""
    return [model_file, RESPONSES_FILE.replace(".json", f"{stem}.json"),
            LOSS_PLOT_FILE.replace(".pdf", f"{stem}.pdf")]


def data_folder(data_dir):
    """The --data-dir folder: the given one, else this script's."""
    return Path(data_dir) if data_dir else Path(__file__).resolve().parent


def input_error(message):
    """Exit 2 with one line, as a bad command-line value does (also from exercise_experiments)."""
    ScriptArgumentParser(prog=Path(__file__).name).error(message)


def split_for_run(data, test_mode=False, max_train_entries=None, max_test_entries=None):
    """The three splits of `data`; test mode and the --max-*-entries flags keep fewer."""
    train_data, test_data, val_data = split_instruction_data(data)
    if test_mode:
        train_data, test_data, val_data = (split[:TEST_MODE_ENTRIES]
                                           for split in (train_data, test_data, val_data))
    train_data = train_data[:max_train_entries]
    test_data = test_data[:max_test_entries]
    print(f"{len(data):,} entries: {len(train_data)} for training, {len(val_data)} for "
          f"validation, {len(test_data)} for testing")
    return train_data, val_data, test_data


def load_model(model_size, models_dir, test_mode=False):
    """GPT-2 with OpenAI's weights (or --test-mode's tiny random model) and its config."""
    if test_mode:
        return GPTModel(TEST_MODE_CONFIG), TEST_MODE_CONFIG
    try:
        model = load_openai_gpt2(model_size, models_dir)
    except DownloadError:
        sys.exit(f"error: could not download GPT-2 {model_size} (no network?). Set "
                 f"{MIRROR_ENV_VAR} to a folder holding gpt-2/models/{model_size}/, or "
                 f"place OpenAI's files in {models_dir}/{model_size}/.")
    hparams = Path(models_dir, model_size, "hparams.json").read_text(encoding="utf-8")
    return model, gpt_config_from_hparams(json.loads(hparams))


def finetune(model, train_loader, val_loader, start_context, tokenizer, device, num_epochs,
             eval_freq, eval_iter, learning_rate, weight_decay, seed):
    """Chapter 5's training loop on the instruction batches; returns the loss history."""
    with torch.no_grad():  # the losses before finetuning, for comparison
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=5)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=5)
    print(f"Before finetuning: training loss {train_loss:.3f}, validation loss {val_loss:.3f}")

    torch.manual_seed(seed)
    trainable = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=weight_decay)
    start = time.perf_counter()
    history = train_model_simple(
        model, train_loader, val_loader, optimizer, device,
        num_epochs=num_epochs, eval_freq=eval_freq, eval_iter=eval_iter,
        start_context=start_context, tokenizer=tokenizer,
    )
    print(f"Training took {(time.perf_counter() - start) / 60:.2f} minutes.")
    return history


def run(settings, data, dataset_class=InstructionDataset, collate_fn=custom_collate_fn,
        format_prompt=format_input, extract=extract_response, prepare_model=None,
        allowed_max_length=None, suffix=""):
    """Finetune on `data` and write the model, the test answers and the loss plot.

    `settings` is the plain dict parse_args returns (of either script); `run`
    hands each function below it the values it needs. The keyword arguments
    are what the exercises (exercise_experiments.py) change: the dataset class
    and collate function, the prompt style, a function applied to the loaded
    model (LoRA) and the longest sequence. Returns the training losses,
    validation losses and answered test entries.
    """
    device, test_mode = settings["device"], settings["test_mode"]
    batch_size, output_dir = settings["batch_size"], settings["output_dir"]
    print(f"torch {torch.__version__}, device: {device}")
    model_file, responses_file, plot_file = output_files(settings["model_size"], test_mode, suffix)
    output_dir.mkdir(parents=True, exist_ok=True)

    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    train_data, val_data, test_data = split_for_run(
        data, test_mode, settings["max_train_entries"], settings["max_test_entries"])
    if len(train_data) < batch_size:  # checked before the model is loaded
        input_error(f"argument --batch-size: {batch_size} is more than the {len(train_data)} "
                    "training entries (0 training batches)")

    torch.manual_seed(settings["seed"])
    model, config = load_model(settings["model_size"], settings["models_dir"], test_mode)
    if prepare_model is not None:
        prepare_model(model)
    model.to(device)
    collate = partial(collate_fn, device=device,
                      allowed_max_length=allowed_max_length or config["context_length"])
    torch.manual_seed(settings["seed"])
    train_loader, val_loader, _ = create_instruction_loaders(
        train_data, val_data, test_data, tokenizer, collate, batch_size=batch_size,
        dataset_class=dataset_class)

    train_losses, val_losses, tokens_seen = finetune(
        model, train_loader, val_loader, format_prompt(val_data[0]), tokenizer, device,
        settings["num_epochs"], settings["eval_freq"], settings["eval_iter"],
        settings["learning_rate"], settings["weight_decay"], settings["seed"])

    max_new_tokens = settings["max_new_tokens"]
    if test_mode:
        max_new_tokens = min(max_new_tokens, TEST_MODE_MAX_NEW_TOKENS)
    generate_test_responses(model, test_data, tokenizer, device, max_new_tokens,
                            format_prompt=format_prompt, extract=extract)
    write_json_atomically(output_dir / responses_file, test_data)
    print(f"Saved the test entries with the model's answers to {output_dir / responses_file}")
    save_checkpoint(output_dir / model_file, model, config=config)
    print(f"Saved the finetuned model to {output_dir / model_file}")

    if train_losses:
        epochs_seen = torch.linspace(0, settings["num_epochs"], len(train_losses))
        figure = plot_losses(epochs_seen, tokens_seen, train_losses, val_losses)
        with atomic_write(output_dir / plot_file, "wb") as f:  # never a half-written PDF
            figure.savefig(f, format=Path(plot_file).suffix.lstrip(".") or None)
        print(f"Saved the loss plot to {output_dir / plot_file}")
    return train_losses, val_losses, test_data


def main(settings):
    """The chapter's run from parse_args's settings: the data, GPT-2, finetuning, files."""
    data_path = data_folder(settings["data_dir"]) / "instruction-data.json"
    return run(settings, load_checked_instruction_data(data_path))


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


def load_checked_instruction_data(path):
    """The instruction data at `path` (fetched if missing), or exit 2 naming --data-dir.

    Checked before any model is built: a reader's own file (used as it is)
    must be the book's format, with entries enough for all three splits.
    """
    try:
        if not path.is_file():  # it will be downloaded there
            writable_folder(path.parent)
        data = download_and_load_file(path, INSTRUCTION_DATA_URL, sha256=INSTRUCTION_DATA_SHA256)
        check_instruction_entries(data, path)
    except (ValueError, RecursionError, OSError, argparse.ArgumentTypeError) as err:
        # ValueError covers bad JSON and non-UTF-8 bytes; RecursionError, absurd nesting
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        input_error(f"argument --data-dir: {reason}")
    return data


def check_instruction_entries(data, path):
    """A JSON list of objects with the texts instruction, input and output (the book's)."""
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON list of entries, not {type(data).__name__}")
    for number, entry in enumerate(data):
        if not (isinstance(entry, dict) and all(isinstance(entry.get(key), str)
                                                for key in ("instruction", "input", "output"))):
            raise ValueError(f"{path}: entry {number} needs the texts instruction, input "
                             "and output")
    if not all(split_instruction_data(data)):
        raise ValueError(f"{path} has {len(data)} entries: too few for training, test and "
                         "validation splits")


if __name__ == "__main__":
    run_from_command_line()
