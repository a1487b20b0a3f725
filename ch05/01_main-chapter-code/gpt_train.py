"""Chapter 5 summary: pretrain GPT-2 (124M) on a short story, from the shell or Python.

    python gpt_train.py              # the book's run: 10 epochs on the-verdict.txt
    python gpt_train.py --epochs 2   # a shorter run
    python gpt_train.py --help

or, as the book does it, from Python:

    from gpt_train import main
    train_losses, val_losses, tokens_seen, model = main(GPT_CONFIG, OTHER_SETTINGS)

with OTHER_SETTINGS holding learning_rate, num_epochs, batch_size and
weight_decay (and optionally the keys of `OPTIONAL_SETTINGS`).

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

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tiktoken
import torch
from downloads import DownloadError, cache_gpt2_tokenizer_files, download_file, sha256_of
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
    existing_file,
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

# The book's four settings are required; these have our defaults (the notebook's).
REQUIRED_SETTINGS = ("learning_rate", "num_epochs", "batch_size", "weight_decay")
OPTIONAL_SETTINGS = {
    "eval_freq": 5,          # measure the losses every this many optimizer steps
    "eval_iter": 5,          # batches per loss measurement
    "start_context": "Every effort moves you",  # prompt of the sample after each epoch
    "seed": 123,             # seeds the weights and the shuffling
    "device": "auto",        # auto, cpu, cuda or mps (or a torch.device)
    "text_file": None,       # train on this file instead of the-verdict.txt
    "data_dir": None,        # where the-verdict.txt is kept (None: this folder)
    # Appendix D's extras, all off by default so the book's run is unchanged:
    "warmup_steps": None,    # linear warm-up from initial_lr to learning_rate over N steps
    "initial_lr": 1e-5,      # where the warm-up starts
    "min_lr": None,          # end of the cosine decay (None: no decay)
    "max_grad_norm": None,   # clip the gradients' global norm after the warm-up
}
# The command-line flag behind each setting, so an error names what the user typed.
FLAGS = {
    "learning_rate": "--lr", "num_epochs": "--epochs", "batch_size": "--batch-size",
    "weight_decay": "--weight-decay", "eval_freq": "--eval-freq", "eval_iter": "--eval-iter",
    "start_context": "--start-context", "seed": "--seed", "device": "--device",
    "text_file": "--text-file", "data_dir": "--data-dir", "context_length": "--context-length",
    "output_dir": "--output-dir", "warmup_steps": "--warmup-steps",
    "initial_lr": "--initial-lr", "min_lr": "--min-lr", "max_grad_norm": "--max-grad-norm",
}


class SettingError(ValueError):
    """A setting that cannot work, found before training starts."""

    def __init__(self, key, problem):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


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
    run = prepare_training(gpt_config, settings)
    train_losses, val_losses, tokens_seen = train_with_progress(run)
    return train_losses, val_losses, tokens_seen, run.model


def prepare_training(gpt_config, settings):
    """Check the settings, get the text, build loaders, model and optimizer."""
    settings = checked_settings(gpt_config, settings)
    device = device_setting(settings["device"])
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
    """The settings with defaults filled in; SettingError for the first bad one."""
    missing = [key for key in REQUIRED_SETTINGS if key not in settings]
    if missing:
        raise SettingError(missing[0], "missing from the settings (the book's four are "
                                       f"{', '.join(REQUIRED_SETTINGS)})")
    unknown = sorted(set(settings) - set(REQUIRED_SETTINGS) - set(OPTIONAL_SETTINGS))
    if unknown:
        raise SettingError(unknown[0], "not a setting of this script")
    settings = {**OPTIONAL_SETTINGS, **settings}
    for key, minimum, why in (
        ("num_epochs", 1, "0 epochs would save an untrained model"),
        ("batch_size", 1, "a batch needs at least one sequence"),
        ("eval_freq", 1, "losses are measured every eval_freq steps"),
        ("eval_iter", 1, "a loss measurement needs at least one batch"),
    ):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SettingError(key, f"must be a whole number >= {minimum}, got {value!r} ({why})")
    if not settings["learning_rate"] > 0:
        raise SettingError("learning_rate", f"must be > 0, got {settings['learning_rate']!r}")
    for key in ("initial_lr", "min_lr", "max_grad_norm"):
        if settings[key] is not None and not settings[key] > 0:
            raise SettingError(key, f"must be > 0, got {settings[key]!r}")
    if settings["min_lr"] is not None and settings["min_lr"] > settings["learning_rate"]:
        raise SettingError("min_lr", "must not exceed the peak learning rate "
                           f"{settings['learning_rate']!r}")
    warmup = settings["warmup_steps"]
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int)
                               or warmup < 0):
        raise SettingError("warmup_steps", f"must be a whole number >= 0, got {warmup!r}")
    if not settings["weight_decay"] >= 0:
        raise SettingError("weight_decay", f"must be >= 0, got {settings['weight_decay']!r}")
    context_length = gpt_config.get("context_length")
    if isinstance(context_length, bool) or not isinstance(context_length, int) \
            or context_length < 1:
        raise SettingError("context_length", f"must be a whole number >= 1, got {context_length!r}")
    return settings


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
    if text_file is not None:
        path = Path(text_file)
        if not path.is_file():
            raise SettingError("text_file", f"no such file: {path}")
        return path
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
    """The command line as (parser, args); the settings' own checks come later."""
    parser = ScriptArgumentParser(
        description="Pretrain a GPT model on a short text (chapter 5). "
                    "The defaults are the book's run.",
    )
    parser.add_argument("--epochs", type=positive_int, default=10,
                        help="passes over the training text")
    parser.add_argument("--lr", type=positive_float, default=4e-4, help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay")
    parser.add_argument("--batch-size", type=positive_int, default=2, help="sequences per batch")
    parser.add_argument("--context-length", type=positive_int, default=256,
                        help="tokens per training sequence (and the model's context length); "
                             "at most the --model-config's")
    parser.add_argument("--text-file", type=existing_file, default=None,
                        help="train on this UTF-8 text file instead of the-verdict.txt")
    parser.add_argument("--data-dir", default=None,
                        help="where the downloaded the-verdict.txt is kept "
                             "(None: this script's folder)")
    parser.add_argument("--output-dir", default=".",
                        help="where to write model.pth and loss-plot.pdf")
    parser.add_argument("--seed", type=int, default=123, help="seed for weights and shuffling")
    add_device_argument(parser)
    parser.add_argument("--eval-freq", type=positive_int, default=5,
                        help="measure the losses every this many optimizer steps")
    parser.add_argument("--eval-iter", type=positive_int, default=5,
                        help="batches per loss measurement")
    parser.add_argument("--model-config", choices=sorted(MODEL_CONFIGS), default="124M",
                        help="model size; 'tiny' trains in seconds (for tests)")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=None,
                        help="linear learning-rate warm-up over this many steps (appendix D)")
    parser.add_argument("--initial-lr", type=positive_float, default=1e-5,
                        help="learning rate at the start of the warm-up")
    parser.add_argument("--min-lr", type=positive_float, default=None,
                        help="decay the learning rate along a cosine to this value")
    parser.add_argument("--max-grad-norm", type=positive_float, default=None,
                        help="clip the gradients' global norm to this value after the warm-up")
    parser.add_argument("--start-context", default="Every effort moves you",
                        help="prompt for the samples printed after each epoch")
    return parser, parser.parse_args(argv)


def run_from_command_line(argv=None):
    """Check everything, train, save the model first, then the plot."""
    parser, args = parse_args(argv)
    base_config = MODEL_CONFIGS[args.model_config]
    gpt_config = {**base_config, "context_length": args.context_length}
    settings = {
        "learning_rate": args.lr, "num_epochs": args.epochs, "batch_size": args.batch_size,
        "weight_decay": args.weight_decay, "eval_freq": args.eval_freq,
        "eval_iter": args.eval_iter, "start_context": args.start_context, "seed": args.seed,
        "device": args.device, "text_file": args.text_file, "data_dir": args.data_dir,
        "warmup_steps": args.warmup_steps, "initial_lr": args.initial_lr,
        "min_lr": args.min_lr, "max_grad_norm": args.max_grad_norm,
    }
    output_dir = Path(args.output_dir)
    created = []
    try:
        if args.context_length > base_config["context_length"]:
            raise SettingError("context_length", f"{args.context_length} is longer than the "
                               f"{args.model_config} model's {base_config['context_length']}")
        checked_settings(gpt_config, settings)  # cheap checks first: nothing is written yet
        created = check_writable_folder(output_dir)
        run = prepare_training(gpt_config, settings)
    except SettingError as err:
        for folder in reversed(created):  # leave no trace of a run that never started
            folder.rmdir()
        parser.error(f"argument {FLAGS.get(err.key, err.key)}: {err.problem}")

    train_losses, val_losses, tokens_seen = train_with_progress(run)

    # The model first: nothing after this point can lose the training run.
    model_path = output_dir / "model.pth"
    save_checkpoint(model_path, run.model, run.optimizer, gpt_config)
    print(f"Saved the model and optimizer state to {model_path}")

    plot_path = output_dir / "loss-plot.pdf"
    try:
        epochs_seen = torch.linspace(0, args.epochs, len(train_losses))
        fig = plot_losses(epochs_seen, tokens_seen, train_losses, val_losses)
        save_figure(fig, plot_path)
    except Exception as err:  # the model is safe; report the plot's failure in one line
        sys.exit(f"error: could not save the loss plot to {plot_path} ({err}); "
                 f"the model is saved in {model_path}")
    print(f"Saved the loss plot to {plot_path}")


def save_figure(fig, path):
    """Save a PDF through a temporary file, so a failure leaves no half-written plot."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".part", delete=False) as tmp:
        temp_path = tmp.name
    try:
        fig.savefig(temp_path, format="pdf")
        os.replace(temp_path, path)
    except BaseException:
        os.remove(temp_path)
        raise


if __name__ == "__main__":
    run_from_command_line()
