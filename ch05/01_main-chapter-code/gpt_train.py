"""Chapter 5 summary: pretrain GPT-2 (124M) on a short story, from the shell or Python.

    python gpt_train.py              # the book's run: 10 epochs on the-verdict.txt
    python gpt_train.py --epochs 2   # a shorter run
    python gpt_train.py --help

or, as the book does it, from Python:

    from gpt_train import main
    train_losses, val_losses, tokens_seen, model = main(GPT_CONFIG, OTHER_SETTINGS)

with OTHER_SETTINGS holding learning_rate, num_epochs, batch_size and
weight_decay (and optionally any other key of `SETTINGS`, or "device").

It downloads Edith Wharton's short story "The Verdict" (or reads it from the
folder named by $LLMS_FROM_SCRATCH_MIRROR), splits it 90/10 into training and
validation text, and trains a randomly initialised GPT model with AdamW. It
prints the training and validation loss every few steps and a greedy sample
after each epoch; a progress bar on stderr shows tokens per second. The shell
command then saves the model (with the optimizer state, so training can
continue) and a plot of the losses.

Nothing is lost to a bad setting: every argument, the text and the output
folder are checked before the first training step (a bad one exits with
status 2 and one line naming it), and the model is saved before the plot.

With no network and no mirror it says so in one line and trains on
`fallback-text.txt`, a short original text shipped with this folder.
"""

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tiktoken
import torch
from downloads import (
    DownloadError,
    atomic_write,
    cache_gpt2_tokenizer_files,
    download_file,
    sha256_of,
)
from gpt_utils import (
    THE_VERDICT_SHA256,
    THE_VERDICT_URL,
    learning_rate_at,
    plot_losses,
    save_checkpoint,
    train_model_simple,
    training_progress,
)
from previous_chapters import GPT_CONFIG_124M, GPTModel, create_dataloader_v1
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    add_settings,
    existing_file,
    exit_with_error,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_device,
)

# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::SCRIPT_DIR
SCRIPT_DIR = Path(__file__).resolve().parent
FALLBACK_TEXT = SCRIPT_DIR / "fallback-text.txt"

# A model small enough to train in seconds: for tests and quick experiments.
# It keeps GPT-2's vocabulary, so the same tokenizer and data work unchanged.
MODEL_CONFIGS = {
    "124M": GPT_CONFIG_124M,
    "tiny": {**GPT_CONFIG_124M, "emb_dim": 32, "n_heads": 2, "n_layers": 2},
}

# Every setting, once: its flag, its checked type (argparse applies it to the
# command line, `checked_settings` to a dict from Python), default and help.
# The book's four come first: required from Python, the book's run on the shell.
SETTINGS = {
    "num_epochs": ("--epochs", positive_int, 10, "passes over the training text"),
    "learning_rate": ("--lr", positive_float, 4e-4, "AdamW learning rate"),
    "batch_size": ("--batch-size", positive_int, 2, "sequences per batch"),
    "weight_decay": ("--weight-decay", non_negative_float, 0.1, "AdamW weight decay"),
    "eval_freq": ("--eval-freq", positive_int, 5,
                  "measure the losses every this many optimizer steps"),
    "eval_iter": ("--eval-iter", positive_int, 5, "batches per loss measurement"),
    "start_context": ("--start-context", None, "Every effort moves you",
                      "prompt for the samples printed after each epoch"),
    "seed": ("--seed", int, 123, "seed for weights and shuffling"),
    "text_file": ("--text-file", existing_file, None,
                  "train on this UTF-8 text file instead of the-verdict.txt"),
    "data_dir": ("--data-dir", None, None,
                 "where the downloaded the-verdict.txt is kept (None: this script's folder)"),
    # Appendix D's extras, all off by default so the book's run is unchanged:
    "warmup_steps": ("--warmup-steps", non_negative_int, None,
                     "linear learning-rate warm-up over this many steps (appendix D)"),
    "initial_lr": ("--initial-lr", positive_float, 1e-5,
                   "learning rate at the start of the warm-up"),
    "min_lr": ("--min-lr", positive_float, None,
               "decay the learning rate along a cosine to this value"),
    "max_grad_norm": ("--max-grad-norm", positive_float, None,
                      "clip the gradients' global norm to this value after the warm-up"),
}
REQUIRED_SETTINGS = ("learning_rate", "num_epochs", "batch_size", "weight_decay")
WHOLE_NUMBERS = (positive_int, non_negative_int, int)
# The flags of the checks that are not one SETTINGS entry, so that an error names them.
OTHER_FLAGS = {"device": "--device", "context_length": "--context-length",
               "output_dir": "--output-dir"}


class SettingError(ValueError):
    """A setting that cannot work, found before training starts."""

    def __init__(self, key, problem):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem

    @property
    def flag(self):
        """The command-line flag of this setting."""
        return SETTINGS[self.key][0] if self.key in SETTINGS else OTHER_FLAGS[self.key]


@dataclass
class TrainingRun:
    """Everything prepared and checked for one training run."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    tokenizer: object
    device: torch.device
    settings: dict


def main(gpt_config, settings):
    """The book's entry point: train a GPTModel(gpt_config); return its history and itself.

    Returns `train_losses, val_losses, tokens_seen, model`, as the book's
    script does. Settings are checked before training; a bad one raises
    `SettingError` (a ValueError) naming it.
    """
    run = prepare_training(gpt_config, checked_settings(gpt_config, settings))
    train_losses, val_losses, tokens_seen = train_with_progress(run)
    return train_losses, val_losses, tokens_seen, run.model


def prepare_training(gpt_config, settings):
    """Get the text, build loaders, model and optimizer, from checked settings."""
    device = settings["device"]
    print(f"torch {torch.__version__}, device: {device}")

    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    check_start_context(settings["start_context"], tokenizer)

    text_path = find_training_text(settings["text_file"], settings["data_dir"] or SCRIPT_DIR)
    text = read_text(text_path, settings["text_file"] is not None)
    print(f"Training text: {text_path.name}, {len(text):,} characters")
    split_idx = int(0.90 * len(text))  # 90% training, 10% validation
    context_length = gpt_config["context_length"]
    check_batches(text_path.name, text[:split_idx], text[split_idx:], tokenizer,
                  context_length, settings["batch_size"])

    torch.manual_seed(settings["seed"])
    train_loader = create_dataloader_v1(
        text[:split_idx], batch_size=settings["batch_size"], max_length=context_length,
        stride=context_length, drop_last=True, shuffle=True, num_workers=0,
    )
    val_loader = create_dataloader_v1(
        text[split_idx:], batch_size=settings["batch_size"], max_length=context_length,
        stride=context_length, drop_last=False, shuffle=False, num_workers=0,
    )
    print(f"{len(train_loader)} training batches, {len(val_loader)} validation batches")

    torch.manual_seed(settings["seed"])
    model = GPTModel(gpt_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"],
                                  weight_decay=settings["weight_decay"])
    return TrainingRun(model, optimizer, train_loader, val_loader, tokenizer, device, settings)


def train_with_progress(run):
    """Run the chapter's `train_model_simple` with a progress bar on stderr."""
    settings = run.settings
    start = time.perf_counter()
    # Every training batch is full (drop_last=True): batch_size x context_length tokens.
    tokens_per_step = settings["batch_size"] * run.model.pos_emb.weight.shape[0]
    steps = settings["num_epochs"] * len(run.train_loader)
    schedule = learning_rate_schedule(settings, steps)
    hook = run.optimizer.register_step_pre_hook(schedule) if schedule else None
    with training_progress(run.optimizer, steps, tokens_per_step):
        history = train_model_simple(
            run.model, run.train_loader, run.val_loader, run.optimizer, run.device,
            num_epochs=settings["num_epochs"], eval_freq=settings["eval_freq"],
            eval_iter=settings["eval_iter"], start_context=settings["start_context"],
            tokenizer=run.tokenizer,
        )
    if hook is not None:
        hook.remove()
    print(f"Training took {(time.perf_counter() - start) / 60:.2f} minutes.")
    return history


def learning_rate_schedule(settings, total_steps):
    """Appendix D's warm-up, cosine decay and clipping as an optimizer pre-step hook.

    The hook runs after `loss.backward()` and before each `optimizer.step()`
    of the chapter's unchanged `train_model_simple`: it sets this step's
    learning rate and clips the gradients. None when no option asks for it.
    """
    warmup, min_lr, max_norm = (settings["warmup_steps"], settings["min_lr"],
                                settings["max_grad_norm"])
    if warmup is None and min_lr is None and max_norm is None:
        return None
    warmup = min(warmup or 0, total_steps)
    peak_lr = settings["learning_rate"]
    step = 0

    def before_step(optimizer, args, kwargs):
        nonlocal step
        if settings["warmup_steps"] is not None or min_lr is not None:
            lr = learning_rate_at(step, total_steps, warmup, settings["initial_lr"], peak_lr,
                                  peak_lr if min_lr is None else min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
        if max_norm is not None and step >= warmup:
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        step += 1

    return before_step


def checked_settings(gpt_config, settings):
    """The settings with defaults filled in; SettingError for the first bad one.

    Each value goes through the type its flag has on the command line, so a
    dict from Python and a command line meet the same checks.
    """
    missing = [key for key in REQUIRED_SETTINGS if key not in settings]
    if missing:
        raise SettingError(missing[0], "missing from the settings (the book's four are "
                                       f"{', '.join(REQUIRED_SETTINGS)})")
    unknown = sorted(set(settings) - set(SETTINGS) - {"device"})
    if unknown:
        raise SettingError(unknown[0], "not a setting of this script")
    defaults = {key: default for key, (_, _, default, _) in SETTINGS.items()}
    settings = {**defaults, "device": "auto", **settings}
    for key, (_, check, _, _) in SETTINGS.items():
        settings[key] = checked_value(key, settings[key], check)
    settings["device"] = device_setting(settings["device"])
    if settings["min_lr"] is not None and settings["min_lr"] > settings["learning_rate"]:
        raise SettingError("min_lr", "must not exceed the peak learning rate "
                           f"{settings['learning_rate']!r}")
    checked_value("context_length", gpt_config.get("context_length"), positive_int)
    return settings


def checked_value(key, value, check):
    """`value` through its flag's type (None stays None); SettingError naming `key`."""
    if value is None or check is None:
        return value
    if check in WHOLE_NUMBERS and (isinstance(value, bool) or not isinstance(value, int)):
        raise SettingError(key, f"must be a whole number, got {value!r}")
    try:
        return check(value)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
        raise SettingError(key, str(err)) from None


def device_setting(name):
    """The torch.device for the "device" setting (a name, or already a torch.device)."""
    if isinstance(name, torch.device):
        return name
    try:
        return resolve_device(name)
    except ValueError as err:
        raise SettingError("device", str(err)) from None


def check_start_context(start_context, tokenizer):
    """The sample prompt must encode to at least one token, or every epoch's sample fails."""
    if not isinstance(start_context, str) or not start_context:
        raise SettingError("start_context", "must not be empty: the sample after each epoch "
                                            "continues it")
    try:
        tokenizer.encode(start_context, allowed_special={"<|endoftext|>"})
    except Exception as err:  # tiktoken raises several types for text it cannot encode
        raise SettingError("start_context", f"cannot be encoded by GPT-2's tokenizer ({err})") \
            from None


def read_text(path, given_by_user):
    """The training text; SettingError (naming --text-file) if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        if not given_by_user:
            raise
        raise SettingError("text_file", f"cannot read {path} as UTF-8 text ({err})") from None


def count_windows(num_tokens, context_length):
    """How many training sequences the chapter's sliding window cuts (stride = length)."""
    return len(range(0, num_tokens - context_length, context_length))


def check_batches(name, train_text, val_text, tokenizer, context_length, batch_size):
    """Refuse a text too short for one training and one validation batch.

    Checked before the loaders are built: PyTorch's shuffling sampler fails on
    an empty dataset with a message about `num_samples` that names neither the
    text nor the settings.
    """
    def windows(text):
        tokens = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
        return count_windows(len(tokens), context_length)

    train_batches = windows(train_text) // batch_size  # drop_last=True
    val_batches = -(-windows(val_text) // batch_size)  # the last, partial batch counts
    if train_batches == 0 or val_batches == 0:
        raise SettingError(
            "context_length",
            f"{name} is too short for context_length={context_length} with "
            f"batch_size={batch_size}: {train_batches} training and {val_batches} validation "
            "batches; use a longer text, a shorter context or a smaller batch",
        )


def check_writable_folder(folder):
    """Create `folder` if needed and prove that a file can be written there.

    Returns the folders it created (outermost first), so that a caller who
    stops before using them can remove them again.
    """
    folder = Path(folder)
    missing = [path for path in (folder, *folder.parents) if not path.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        for path in reversed(missing):
            if path.is_dir():
                path.rmdir()
        raise SettingError("output_dir", f"cannot write to {folder} "
                                         f"({err.strerror or err})") from None
    return missing


def find_training_text(text_file, data_dir):
    """The file to train on: `text_file`, else the-verdict.txt, else the fallback text.

    the-verdict.txt is downloaded into `data_dir` once (or copied from the
    $LLMS_FROM_SCRATCH_MIRROR folder). A different file of that name there is
    the user's: we refuse to replace it. Without network and mirror we still
    want a working run, so we say so in one line and use the shipped text.
    """
    if text_file is not None:  # checked by checked_settings
        return Path(text_file)
    destination = Path(data_dir) / "the-verdict.txt"
    if destination.exists() and sha256_of(destination) != THE_VERDICT_SHA256:
        raise SettingError("data_dir", f"{destination} is not the book's the-verdict.txt and "
                           "is left alone; train on it with --text-file, or choose "
                           "another --data-dir")
    try:
        return download_file(THE_VERDICT_URL, destination, sha256=THE_VERDICT_SHA256)
    except DownloadError:
        print("Could not download the-verdict.txt (no network and no copy in "
              f"$LLMS_FROM_SCRATCH_MIRROR): training on {FALLBACK_TEXT.name} instead.")
        return FALLBACK_TEXT


def parse_args(argv=None):
    """The command line as plain values: (gpt_config, settings, output_dir), all checked."""
    parser = ScriptArgumentParser(
        description="Pretrain a GPT model on a short text (chapter 5). "
                    "The defaults are the book's run.",
    )
    add_settings(parser, SETTINGS)
    parser.add_argument("--context-length", type=positive_int, default=256,
                        help="tokens per training sequence (and the model's context length); "
                             "at most the --model-config's")
    parser.add_argument("--model-config", choices=sorted(MODEL_CONFIGS), default="124M",
                        help="model size; 'tiny' trains in seconds (for tests)")
    parser.add_argument("--output-dir", type=Path, default=Path("."),
                        help="where to write model.pth and loss-plot.pdf")
    add_device_argument(parser)
    args = parser.parse_args(argv)

    base_config = MODEL_CONFIGS[args.model_config]
    if args.context_length > base_config["context_length"]:
        parser.error(f"argument --context-length: {args.context_length} is longer than the "
                     f"{args.model_config} model's {base_config['context_length']}")
    gpt_config = {**base_config, "context_length": args.context_length}
    settings = {key: getattr(args, key) for key in [*SETTINGS, "device"]}
    try:
        settings = checked_settings(gpt_config, settings)
    except SettingError as err:
        parser.error(f"argument {err.flag}: {err.problem}")
    return gpt_config, settings, args.output_dir


def run_from_command_line(argv=None):
    """Check everything, train, save the model first, then the plot."""
    gpt_config, settings, output_dir = parse_args(argv)
    created = []
    try:
        created = check_writable_folder(output_dir)  # cheap checks came first: nothing written
        run = prepare_training(gpt_config, settings)
    except SettingError as err:
        for folder in reversed(created):  # leave no trace of a run that never started
            folder.rmdir()
        exit_with_error(f"argument {err.flag}: {err.problem}")

    train_losses, val_losses, tokens_seen = train_with_progress(run)

    # The model first: nothing after this point can lose the training run.
    model_path = output_dir / "model.pth"
    save_checkpoint(model_path, run.model, run.optimizer, gpt_config)
    print(f"Saved the model and optimizer state to {model_path}")

    plot_path = output_dir / "loss-plot.pdf"
    try:
        epochs_seen = torch.linspace(0, settings["num_epochs"], len(train_losses))
        fig = plot_losses(epochs_seen, tokens_seen, train_losses, val_losses)
        with atomic_write(plot_path, "wb") as f:  # a failure leaves no half-written plot
            fig.savefig(f, format="pdf")
    except Exception as err:  # the model is safe; report the plot's failure in one line
        sys.exit(f"error: could not save the loss plot to {plot_path} ({err}); "
                 f"the model is saved in {model_path}")
    print(f"Saved the loss plot to {plot_path}")


if __name__ == "__main__":
    run_from_command_line()
