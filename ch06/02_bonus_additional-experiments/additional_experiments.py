"""Chapter 6's spam classifier with one choice changed at a time.

    python additional_experiments.py                                # the chapter's run
    python additional_experiments.py --trainable-layers all         # finetune everything
    python additional_experiments.py --trainable-token-pos first    # classify from token 1
    python additional_experiments.py --weights random --num-epochs 2
    python additional_experiments.py --test-mode --weights random   # a tiny model, seconds
    python additional_experiments.py --help

Each run downloads the SMS Spam Collection (or copies it from the folder named
by $LLMS_FROM_SCRATCH_MIRROR), balances and splits it as chapter 6 does,
builds GPT-2 (OpenAI's pretrained weights, or random ones), finetunes it as
the options say, prints the training, validation and test accuracy and the
training time, and appends one row with the settings and results to a CSV file
(--results-csv), so a series of runs builds a table.

The experiment code below (from `EXPERIMENT_TEST_CONFIG` to
`run_experiment`) is also what ../03_bonus_imdb-classification/train_gpt.py
runs, through a checked copy in that folder's previous_chapters.py.
"""

import csv
import io
import time
from pathlib import Path

import pandas as pd
import tiktoken
import torch
from downloads import DownloadError, atomic_write, cache_gpt2_tokenizer_files
from previous_chapters import (
    GPT2_CONTEXT_LENGTH,
    GPT2_MODEL_SIZES,
    GPT2_SHAPES,
    GPT_CONFIG_124M,
    NUM_CLASSES,
    SMS_SPAM_URL,
    TEST_MODE_EXAMPLES,
    GPTModel,
    context_length_arg,
    download_and_load_gpt2,
    download_and_unzip_spam_data,
    gpt_config_from_hparams,
    load_weights_into_gpt,
    replace_linear_with_lora,
    replace_linear_with_lora_merged,
    write_splits,
)
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    synchronize,
    writable_file,
)
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

# --test-mode with --weights random: a tiny GPT with GPT-2's vocabulary and
# context, three blocks so that "last_two_blocks" differs from "all".
EXPERIMENT_TEST_CONFIG = {**GPT_CONFIG_124M, "emb_dim": 32, "n_heads": 2, "n_layers": 3,
                          "drop_rate": 0.0, "qkv_bias": True}
TRAINABLE_LAYERS = ("last_layer", "last_block", "last_two_blocks", "all", "lora",
                    "lora_alternative")

# The book repository's spelling of the sizes ("gpt2-medium (355M)"), accepted beside ours.
GPT2_BOOK_SIZE_NAMES = {
    "gpt2-small (124M)": "124M",
    "gpt2-medium (355M)": "355M",
    "gpt2-large (774M)": "774M",
    "gpt2-xl (1558M)": "1558M",
}
TOKEN_POSITIONS = ("first", "last", "flexible")

# The columns of one results row, in order.
EXPERIMENT_FIELDS = (
    "script", "model_size", "weights", "trainable_layers", "lora_rank", "lora_alpha",
    "trainable_token_pos", "average_embeddings", "context_length", "no_padding",
    "batch_size", "accumulation_steps", "disable_causal_mask", "ignore_index",
    "num_epochs", "learning_rate", "seed", "test_mode", "device", "trainable_params",
    "train_acc", "val_acc", "test_acc", "train_time_s",
)


class ClassificationDataset(Dataset):
    """Texts and labels from a CSV file as (token ids, label, number of real tokens).

    Like chapter 6's `SpamDataset`, but it also remembers how many tokens of
    each padded row are real (for --trainable-token-pos flexible and
    --average-embeddings), can leave the rows unpadded (--no-padding, batches
    of one), and reads the columns text and label in any capitalisation
    (chapter 6's CSVs say Text and Label, the IMDB ones text and label).
    Rows are cut to `max_length` tokens when it is given, and always to the
    model's `context_length` (when given): IMDB reviews can be longer.
    """

    def __init__(self, csv_file, tokenizer, max_length=None, pad_token_id=50256,
                 no_padding=False, context_length=None):
        data = pd.read_csv(csv_file, keep_default_na=False)
        columns = {name.lower(): name for name in data.columns}
        missing = [name for name in ("text", "label") if name not in columns]
        if missing:
            raise ValueError(f"{csv_file} lacks the column(s) {', '.join(missing)}: "
                             "expected a header with text and label")
        self.labels = [int(label) for label in data[columns["label"]]]
        encoded = [tokenizer.encode(text) for text in data[columns["text"]]]
        limits = [length for length in (max_length, context_length) if length is not None]
        if limits:
            encoded = [ids[:min(limits)] for ids in encoded]
        if any(not ids for ids in encoded):
            raise ValueError(f"{csv_file} holds an empty text")
        self.num_tokens = [len(ids) for ids in encoded]
        self.max_length = max(self.num_tokens) if max_length is None else max_length
        if not no_padding:
            encoded = [ids + [pad_token_id] * (self.max_length - len(ids)) for ids in encoded]
        self.encoded_texts = encoded

    def __getitem__(self, index):
        return (torch.tensor(self.encoded_texts[index], dtype=torch.long),
                torch.tensor(self.labels[index], dtype=torch.long),
                torch.tensor(self.num_tokens[index], dtype=torch.long))

    def __len__(self):
        return len(self.labels)


def build_gpt(model_size, weights="pretrained", models_dir="gpt2", seed=123, test_mode=False):
    """The GPT of --model-size with OpenAI's weights or random ones, and its configuration.

    Random weights use the pretrained model's configuration (full context,
    query/key/value biases, no dropout), so the two differ only in where the
    weights come from. --test-mode with random weights builds a tiny model.
    """
    if weights == "random":
        shape = EXPERIMENT_TEST_CONFIG if test_mode else GPT2_SHAPES[model_size]
        config = {**GPT_CONFIG_124M, "context_length": GPT2_CONTEXT_LENGTH, "drop_rate": 0.0,
                  "qkv_bias": True, "emb_dim": shape["emb_dim"], "n_heads": shape["n_heads"],
                  "n_layers": shape["n_layers"]}
        torch.manual_seed(seed)
        return GPTModel(config), config
    settings, params = download_and_load_gpt2(model_size, models_dir)
    config = gpt_config_from_hparams(settings)
    model = GPTModel(config)
    load_weights_into_gpt(model, params)
    return model, config


def configure_trainable_layers(model, trainable_layers, lora_rank=16, lora_alpha=16):
    """Give `model` a two-class head and leave trainable only what `trainable_layers` says.

    last_layer: the new head only; last_block: also the last transformer block
    and the final layer norm (the chapter's choice); last_two_blocks: also the
    block before; all: everything; lora: every weight frozen, the new head
    included, and a trainable LoRA update of rank `lora_rank` added to every
    nn.Linear (appendix E); lora_alternative: the same with LinearWithLoRAMerged,
    which adds the update to the frozen weight in the forward pass. The head
    is seeded, so runs are reproducible.
    """
    if trainable_layers not in TRAINABLE_LAYERS:
        raise ValueError(f"trainable_layers must be one of {TRAINABLE_LAYERS}, "
                         f"got {trainable_layers!r}")
    for param in model.parameters():
        param.requires_grad = trainable_layers == "all"
    torch.manual_seed(123)
    model.out_head = torch.nn.Linear(model.out_head.in_features, NUM_CLASSES)
    if trainable_layers in ("lora", "lora_alternative"):
        model.out_head.requires_grad_(False)
        replace = (replace_linear_with_lora if trainable_layers == "lora"
                   else replace_linear_with_lora_merged)
        replace(model, lora_rank, lora_alpha)
        return model
    blocks = {"last_layer": 0, "last_block": 1, "last_two_blocks": 2}.get(trainable_layers, 0)
    for block in model.trf_blocks[len(model.trf_blocks) - blocks:]:
        block.requires_grad_(True)
    if blocks:
        model.final_norm.requires_grad_(True)
    return model


def disable_causal_mask(model):
    """Let every token attend to every other one, later ones included.

    Each attention module hides later tokens with its `mask` buffer (ones
    above the diagonal); an all-zero mask hides nothing.
    """
    for block in model.trf_blocks:
        block.att.mask.zero_()
    return model


def class_logits(model, input_batch, num_tokens, token_pos="last", average_embeddings=False):
    """The (batch, classes) logits the classifier decides from.

    The model gives class logits at every position. "last" reads the last
    position (padding included, as in the chapter), "first" the first one,
    "flexible" each text's last real token. With `average_embeddings`, the
    logits are averaged over each text's real tokens instead: the head is
    linear, so that equals applying it to the averaged final embeddings.
    """
    logits = model(input_batch)  # (batch, tokens, classes)
    rows = torch.arange(logits.shape[0], device=logits.device)
    num_tokens = num_tokens.to(logits.device)
    if average_embeddings:
        positions = torch.arange(logits.shape[1], device=logits.device)
        real = (positions[None, :] < num_tokens[:, None]).to(logits.dtype)
        return (logits * real[:, :, None]).sum(dim=1) / num_tokens[:, None]
    if token_pos == "first":
        return logits[:, 0, :]
    if token_pos == "flexible":
        return logits[rows, num_tokens - 1, :]
    return logits[:, -1, :]


def experiment_loss(batch, model, device, token_pos="last", average_embeddings=False,
                    ignore_index=-100):
    """Cross-entropy of one batch's class logits (targets equal to `ignore_index` left out).

    `token_pos` and `average_embeddings` choose the logits as `class_logits` does.
    """
    input_batch, target_batch, num_tokens = (t.to(device) for t in batch)
    logits = class_logits(model, input_batch, num_tokens, token_pos, average_embeddings)
    return torch.nn.functional.cross_entropy(logits, target_batch, ignore_index=ignore_index)


def experiment_accuracy(data_loader, model, device, num_batches=None, token_pos="last",
                        average_embeddings=False):
    """Share of correctly classified texts in the first `num_batches` batches (all by default)."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        progress = tqdm(data_loader, total=num_batches, desc="accuracy", leave=False)
        for i, batch in enumerate(progress):
            if i >= num_batches:
                break
            input_batch, target_batch, num_tokens = (t.to(device) for t in batch)
            logits = class_logits(model, input_batch, num_tokens, token_pos, average_embeddings)
            correct += (logits.argmax(dim=-1) == target_batch).sum().item()
            seen += target_batch.shape[0]
        progress.close()
    return correct / seen


def experiment_loss_loader(data_loader, model, device, num_batches, **loss_options):
    """Average batch loss over the first `num_batches` batches, without dropout.

    `loss_options` are `experiment_loss`'s keyword arguments.
    """
    model.eval()
    num_batches = min(num_batches, len(data_loader))
    total = 0.0
    with torch.no_grad():
        for i, batch in enumerate(data_loader):
            if i >= num_batches:
                break
            total += experiment_loss(batch, model, device, **loss_options).item()
    model.train()
    return total / max(num_batches, 1)


def train_experiment(model, train_loader, val_loader, optimizer, device, num_epochs, eval_freq,
                     eval_iter, accumulation_steps=1, token_pos="last", average_embeddings=False,
                     ignore_index=-100):
    """Chapter 6's training loop with gradient accumulation.

    The gradients of `accumulation_steps` batches are summed (each loss
    divided by that number) before one optimizer step, which behaves like one
    batch that many times larger: how --no-padding's batches of one can still
    learn from several texts per step. Losses are printed every `eval_freq`
    optimizer steps, accuracies after each epoch (`eval_iter` batches each).
    The last three arguments choose the logits and the loss (`experiment_loss`).
    """
    readout = {"token_pos": token_pos, "average_embeddings": average_embeddings}
    loss_options = {**readout, "ignore_index": ignore_index}
    steps, global_step = accumulation_steps, -1
    for epoch in range(num_epochs):
        model.train()
        optimizer.zero_grad()
        batches = tqdm(train_loader, desc=f"epoch {epoch + 1}", leave=False)
        for batch_index, batch in enumerate(batches, start=1):
            (experiment_loss(batch, model, device, **loss_options) / steps).backward()
            if batch_index % steps and batch_index != len(train_loader):
                continue
            optimizer.step()
            optimizer.zero_grad()
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = (
                    experiment_loss_loader(loader, model, device, eval_iter, **loss_options)
                    for loader in (train_loader, val_loader))
                tqdm.write(f"Ep {epoch + 1} (Step {global_step:06d}): "
                           f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        train_acc, val_acc = (
            experiment_accuracy(loader, model, device, eval_iter, **readout)
            for loader in (train_loader, val_loader))
        tqdm.write(f"Training accuracy: {train_acc * 100:.2f}% | "
                   f"Validation accuracy: {val_acc * 100:.2f}%")


def gpt2_size_arg(value):
    """--model-size: 124M, 355M, 774M, 1558M, or the book's "gpt2-medium (355M)" spelling."""
    return GPT2_BOOK_SIZE_NAMES.get(value, value)


def add_training_arguments(parser, num_epochs=5):
    """--num-epochs, --learning-rate, --batch-size and --seed: every finetuning script has them."""
    parser.add_argument("--num-epochs", type=positive_int, default=num_epochs,
                        help="passes over the data")
    parser.add_argument("--learning-rate", type=positive_float, default=5e-5,
                        help="AdamW learning rate")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="texts per batch")
    parser.add_argument("--seed", type=int, default=123,
                        help="seed for the random weights, the new head and the shuffling")


def add_experiment_arguments(parser):
    """The options the experiment scripts share (the book repository's names, hyphenated)."""
    add_training_arguments(parser)
    parser.add_argument("--model-size", type=gpt2_size_arg, choices=GPT2_MODEL_SIZES,
                        default="124M", help='which GPT-2 to finetune (the book\'s spelling '
                        '"gpt2-medium (355M)" works too)')
    parser.add_argument("--weights", choices=("pretrained", "random"), default="pretrained",
                        help="OpenAI's pretrained weights, or random ones (no download)")
    parser.add_argument("--models-dir", default="gpt2",
                        help="folder that holds (or receives) OpenAI's GPT-2 files")
    parser.add_argument("--trainable-layers", choices=TRAINABLE_LAYERS, default="last_block",
                        help="what to finetune: the new head only, the last block(s) with the "
                             "final norm and head, everything, or LoRA layers (lora_alternative: "
                             "LoRA added to the frozen weights in the forward pass)")
    parser.add_argument("--lora-rank", type=positive_int, default=16,
                        help="rank of the LoRA updates (--trainable-layers lora)")
    parser.add_argument("--lora-alpha", type=positive_float, default=16,
                        help="LoRA's alpha: the update is scaled by alpha / rank")
    parser.add_argument("--trainable-token-pos", choices=TOKEN_POSITIONS, default="last",
                        help="classify from the last position, the first one, or each "
                             "text's last real token (flexible)")
    parser.add_argument("--average-embeddings", action="store_true",
                        help="classify from the average over each text's tokens")
    parser.add_argument("--context-length", type=context_length_arg,
                        default="longest_training_example",
                        help="pad texts to the longest training text, to the model's context "
                             "(model_context_length) or to a number of tokens")
    parser.add_argument("--no-padding", action="store_true",
                        help="no padding tokens: batches of one text (see --accumulation-steps)")
    parser.add_argument("--accumulation-steps", type=positive_int, default=1,
                        help="batches whose gradients are summed before each optimizer step")
    parser.add_argument("--disable-causal-mask", action="store_true",
                        help="let every token attend to later tokens too")
    parser.add_argument("--ignore-index", type=int, default=-100,
                        help="class label left out of the loss (the class labels are 0 and 1, "
                             "so the default -100, like 50256, leaves nothing out)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.1,
                        help="AdamW weight decay")
    parser.add_argument("--eval-freq", type=positive_int, default=50,
                        help="print the losses every this many optimizer steps")
    parser.add_argument("--eval-iter", type=positive_int, default=5,
                        help="batches per loss and accuracy measurement during training")
    parser.add_argument("--results-csv", type=writable_file, default="results.csv",
                        help="CSV file that receives one row per run (created if missing)")
    parser.add_argument("--max-examples", type=non_negative_int, default=0,
                        help="use only this many texts per split (0: all)")
    parser.add_argument("--test-mode", action="store_true",
                        help=f"{TEST_MODE_EXAMPLES} texts per split and, with --weights "
                             "random, a tiny 3-block GPT: a run of seconds, for tests")
    parser.add_argument("--compile", action="store_true",
                        help="compile the model with torch.compile (the first steps are slow "
                             "while it compiles; on a CPU it needs a C++ compiler)")
    add_device_argument(parser)


def cannot_compile_reason(device):
    """Why torch.compile cannot work on `device` here (one line), or None if it can.

    On a CPU, torch.compile's default backend writes C++ and builds it with the
    compiler it finds (g++ by default); without one it would fail only at the
    first forward pass, with a long traceback.
    """
    if device.type != "cpu":
        return None
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        get_cpp_compiler()
    except (ImportError, RuntimeError):  # RuntimeError: InvalidCxxCompiler
        return ("torch.compile needs a C++ compiler on the CPU and none was found "
                "(install g++, or run without --compile)")
    return None


def check_experiment_args(parser, args):
    """Checks that involve several options or the results file; exit 2 on a problem.

    Part of parsing (`parse_args` calls it before it returns): it only checks,
    and changes nothing.
    """
    try:
        results_header(args.results_csv)
    except ValueError as err:
        parser.error(f"argument --results-csv: {err}")
    reason = cannot_compile_reason(args.device) if args.compile else None
    if reason:
        parser.error(f"argument --compile: {reason}")


def results_header(path):
    """Check that `path` is missing or a results file with our columns (ValueError if not)."""
    path = Path(path)
    if not path.exists():
        return
    try:
        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path} ({err})") from None
    if header is not None and tuple(header) != EXPERIMENT_FIELDS:
        raise ValueError(f"{path} exists with other columns; name another file")


def append_result(path, row):
    """Append `row` (a dict with EXPERIMENT_FIELDS) to the CSV file `path`, atomically.

    The old content and the new row go to a temporary file in the same
    folder, which then replaces the file: an interrupted run never leaves a
    half-written table, and a file with other columns is never touched.
    """
    path = Path(path)
    results_header(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    new_row = io.StringIO()
    writer = csv.DictWriter(new_row, fieldnames=EXPERIMENT_FIELDS, lineterminator="\n")
    if not old:
        writer.writeheader()
    writer.writerow(row)
    if old and not old.endswith("\n"):
        old += "\n"
    with atomic_write(path, newline="") as f:  # an existing file keeps its mode
        f.write(old + new_row.getvalue())


def make_experiment_loaders(csv_paths, tokenizer, model_context_length, context_length,
                            batch_size, seed, no_padding=False, max_examples=0):
    """Loaders for the train/validation/test CSVs, and the padding length (None without padding).

    `context_length` is a --context-length value; `max_examples` (0: all)
    limits every split.
    """
    if context_length == "model_context_length":
        max_length = model_context_length
    elif context_length == "longest_training_example":
        max_length = None
    else:
        max_length = min(int(context_length), model_context_length)
    train = ClassificationDataset(csv_paths[0], tokenizer, max_length, no_padding=no_padding,
                                  context_length=model_context_length)
    datasets = [train] + [ClassificationDataset(path, tokenizer, train.max_length,
                                                no_padding=no_padding)
                          for path in csv_paths[1:]]
    if max_examples:
        datasets = [Subset(d, range(min(max_examples, len(d)))) for d in datasets]
    torch.manual_seed(seed)  # the training loader's shuffling
    loaders = [DataLoader(d, batch_size=batch_size, shuffle=(i == 0), drop_last=(i == 0))
               for i, d in enumerate(datasets)]
    return loaders, (None if no_padding else train.max_length)


def run_experiment(settings, csv_paths, script_name):
    """Build, finetune and evaluate the classifier `settings` describes; append the results row.

    `settings` is a dict of plain values with the experiment options' names
    (what `parse_args` returns). Returns the row (a dict).
    ValueError, ImportError and DownloadError reach the caller, which reports
    them in one line.
    """
    settings = dict(settings)
    if settings["no_padding"] and settings["batch_size"] != 1:
        print(f"--no-padding: batches of one text instead of {settings['batch_size']} "
              "(texts of different lengths cannot share a batch without padding)")
        settings["batch_size"] = 1
    device = settings["device"]
    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    model, config = build_gpt(settings["model_size"], settings["weights"],
                              settings["models_dir"], settings["seed"], settings["test_mode"])
    (train_loader, val_loader, test_loader), max_length = make_experiment_loaders(
        csv_paths, tokenizer, config["context_length"], settings["context_length"],
        settings["batch_size"], settings["seed"], settings["no_padding"],
        settings["max_examples"] or (TEST_MODE_EXAMPLES if settings["test_mode"] else 0))
    print("Texts are not padded (batches of one)" if max_length is None
          else f"Texts padded to {max_length} tokens")
    print(f"{len(train_loader)} training, {len(val_loader)} validation and "
          f"{len(test_loader)} test batches")

    configure_trainable_layers(model, settings["trainable_layers"], settings["lora_rank"],
                               settings["lora_alpha"])
    if settings["disable_causal_mask"]:
        disable_causal_mask(model)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"Trainable parameters: {trainable:,}")
    if settings["compile"]:
        model = torch.compile(model)

    torch.manual_seed(settings["seed"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=settings["learning_rate"],
                                  weight_decay=settings["weight_decay"])
    readout = {"token_pos": settings["trainable_token_pos"],
               "average_embeddings": settings["average_embeddings"]}
    synchronize(device)
    start = time.perf_counter()
    train_experiment(model, train_loader, val_loader, optimizer, device,
                     settings["num_epochs"], settings["eval_freq"], settings["eval_iter"],
                     settings["accumulation_steps"], ignore_index=settings["ignore_index"],
                     **readout)
    synchronize(device)
    train_time = time.perf_counter() - start
    print(f"Training completed in {train_time / 60:.2f} minutes.")

    accuracies = {}
    for name, key, loader in (("Training", "train_acc", train_loader),
                              ("Validation", "val_acc", val_loader),
                              ("Test", "test_acc", test_loader)):
        accuracies[key] = experiment_accuracy(loader, model, device, **readout)
        print(f"{name} accuracy: {accuracies[key] * 100:.2f}%")

    row = {**{name: settings.get(name) for name in EXPERIMENT_FIELDS},
           "script": script_name,
           "model_size": "tiny" if settings["test_mode"] and settings["weights"] == "random"
           else settings["model_size"],
           "context_length": "none" if max_length is None else max_length,
           "device": device.type, "trainable_params": trainable,
           **{key: f"{value:.4f}" for key, value in accuracies.items()},
           "train_time_s": f"{train_time:.1f}"}
    append_result(settings["results_csv"], row)
    print(f"Appended the results to {settings['results_csv']}")
    return row


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (checked: a bad value exits 2
    naming its flag); `run_experiment` takes it as its settings."""
    parser = ScriptArgumentParser(
        description="Chapter 6's spam classifier with one choice changed at a time. "
                    "The defaults are the chapter's run.")
    add_experiment_arguments(parser)
    parser.add_argument("--data-dir", default="sms_spam_collection",
                        help="where the SMS Spam Collection is downloaded and split")
    args = parser.parse_args(argv)
    check_experiment_args(parser, args)
    return vars(args)


def main(argv=None):
    settings = parse_args(argv)
    print(f"torch {torch.__version__}, device: {settings['device']}")
    data_dir = Path(settings["data_dir"])
    try:
        data_file = download_and_unzip_spam_data(
            SMS_SPAM_URL, data_dir / "sms_spam_collection.zip", data_dir,
            data_dir / "SMSSpamCollection.tsv")
        csv_paths = write_splits(data_file, data_dir)
        run_experiment(settings, csv_paths, Path(__file__).name)
    except (ValueError, ImportError, DownloadError) as err:
        raise SystemExit(f"{Path(__file__).name}: error: {err}") from None


if __name__ == "__main__":
    main()
