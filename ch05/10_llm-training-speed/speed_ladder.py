"""The training-speed ladder: chapter 5's training loop, ten switches that make it faster.

The book's repository walks chapter 5's GPT training script through ten changes
(its `ch05/10_llm-training-speed`). Here every change is a switch, numbered as
in the book's table, so the ladder can be climbed one step at a time:

 1. build the causal mask on the fly instead of keeping a (context x context) buffer
 2. TF32 tensor cores for float32 matrix products (NVIDIA Ampere and newer)
 3. fused AdamW (one kernel updates all parameters)
 4. pinned (page-locked) host memory for the data loader
 5. bfloat16 weights and activations
 6. PyTorch's own LayerNorm and GELU instead of the chapter's Python versions
 7. FlashAttention through `scaled_dot_product_attention` (one fused attention kernel)
 8. `torch.compile`
 9. an output layer padded to 50,304 rows (a multiple of 64), whose extra logits
    are cut off before anything reads them
10. a larger batch

Steps 1, 6, 7 and 9 rebuild modules of a chapter-5 `GPTModel` around the very
same weights, so a model built with any set of switches starts from the weights
the baseline draws for the same seed, and the tests can prove that each switch
changes the speed and nothing else. `00_orig.py`, `01_opt_single_gpu.py` and
`02_opt_multi_gpu_ddp.py` are the command-line faces of this module.
"""

import json
import os
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import tiktoken
import torch
import torch.nn as nn
import torch.nn.functional as F
from downloads import DownloadError, atomic_write, cache_gpt2_tokenizer_files, download_file
from previous_chapters import (
    GPT_CONFIG_124M,
    THE_VERDICT_SHA256,
    THE_VERDICT_URL,
    GPTModel,
    MultiHeadAttention,
    calc_loss_batch,
    create_dataloader_v1,
    evaluate_model,
    generate_and_print_sample,
    plot_losses,
)
from script_helpers import (
    add_device_argument,
    add_settings,
    exit_with_error,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_device,
    synchronize,
    writable_file,
    writable_folder,
)

# Copied from ch02/02_bonus_bytepair-encoder/benchmark_tokenizers.py::SCRIPT_DIR
SCRIPT_DIR = Path(__file__).resolve().parent
# Copied from ch05/01_main-chapter-code/gpt_train.py::FALLBACK_TEXT
FALLBACK_TEXT = SCRIPT_DIR / "fallback-text.txt"
MIDDLEMARCH_URL = "https://www.gutenberg.org/cache/epub/145/pg145.txt"
PADDED_VOCAB_SIZE = 50_304  # 50,257 rounded up to a multiple of 64 (= 786 x 64)

# The book repository's model, and smaller ones that a CPU trains in reasonable time.
LADDER_MODELS = {
    "124M": GPT_CONFIG_124M,
    "small": {**GPT_CONFIG_124M, "context_length": 256, "emb_dim": 256, "n_heads": 4,
              "n_layers": 4},
    "tiny": {**GPT_CONFIG_124M, "context_length": 32, "emb_dim": 32, "n_heads": 2,
             "n_layers": 2},
}


@dataclass(frozen=True)
class Step:
    name: str
    cpu_why_not: str = ""  # why the step cannot apply on a CPU ("" where it can)


STEPS = {
    1: Step("on-the-fly causal mask"),
    2: Step("TF32 tensor cores",
            "TF32 is a number format of NVIDIA tensor cores (Ampere and newer); a CPU has "
            "none"),
    3: Step("fused AdamW"),
    4: Step("pinned memory",
            "pinned host memory speeds up copies from the CPU to a GPU; on a CPU the "
            "batches never move"),
    5: Step("bfloat16"),
    6: Step("nn.LayerNorm and nn.GELU"),
    7: Step("FlashAttention (SDPA)"),
    8: Step("torch.compile"),
    9: Step(f"vocabulary padded to {PADDED_VOCAB_SIZE:,}"),
    10: Step("larger batch"),
}


def parse_steps(text):
    """'1,3,6-9', 'all' or 'none' -> a sorted tuple of step numbers; ValueError if unknown."""
    text = text.strip().lower()
    if text == "none" or text == "":
        return ()
    if text == "all":
        return tuple(STEPS)
    steps = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            numbers = range(int(first), int(last or first) + 1)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a step number or range "
                             "(use e.g. 1,3,6-9, all or none)") from None
        unknown = [n for n in numbers if n not in STEPS] or (not numbers and [part])
        if unknown:
            raise ValueError(f"no step {unknown[0]}: the ladder has steps 1-{len(STEPS)}")
        steps.update(numbers)
    return tuple(sorted(steps))


def steps_that_cannot_run(steps, device, has_compiler=None):
    """[(step, why)] for the chosen steps this device cannot run."""
    problems = []
    for number in steps:
        if device.type == "cpu" and STEPS[number].cpu_why_not:
            problems.append((number, STEPS[number].cpu_why_not))
        if number == 2 and device.type == "cuda" and torch.cuda.get_device_capability()[0] < 8:
            problems.append((number, "TF32 needs an NVIDIA GPU of the Ampere generation or "
                                     "newer"))
        if number == 8:
            compiler = has_c_compiler() if has_compiler is None else has_compiler
            if not compiler and device.type == "cpu":
                problems.append((number, "torch.compile writes C++ for a CPU and needs a C "
                                         "compiler (cc), which this machine lacks"))
    return problems


def has_c_compiler():
    """torch.compile's CPU code is C++, built with the compiler `cc`/`$CXX` names."""
    return any(shutil.which(name) for name in (os.environ.get("CXX", "c++"), "g++", "cc"))


# ---------------------------------------------------------------- the model switches

class OnTheFlyMaskAttention(MultiHeadAttention):
    """Step 1: chapter 3's attention without the (context x context) mask buffer.

    The buffer costs context_length^2 floats in every layer (4 MiB each at
    1,024 tokens) and is sliced on every call. Building the boolean mask for the
    tokens at hand is cheap, and the scores are masked exactly as before.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        del self.mask  # drops the buffer (and its state_dict entry)

    def forward(self, x):
        batch_size, num_tokens, _ = x.shape
        queries = self._split_heads(self.W_query(x))
        keys = self._split_heads(self.W_key(x))
        values = self._split_heads(self.W_value(x))

        attn_scores = queries @ keys.transpose(2, 3)
        causal_mask = torch.triu(torch.ones(num_tokens, num_tokens, dtype=torch.bool,
                                            device=x.device), diagonal=1)
        attn_scores.masked_fill_(causal_mask, -torch.inf)
        attn_weights = torch.softmax(attn_scores / self.head_dim**0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2)
        context = context.contiguous().view(batch_size, num_tokens, self.d_out)
        return self.out_proj(context)


class PyTorchMultiHeadAttention(nn.Module):
    """`MultiHeadAttention` computed by PyTorch's fused scaled-dot-product attention.

    One linear layer `qkv` makes queries, keys and values together (its weight
    is W_query, W_key and W_value stacked), and `proj` is the output
    projection. `F.scaled_dot_product_attention(..., is_causal=True)` applies
    the causal mask, the 1/sqrt(head_dim) scaling, softmax and attention
    dropout in one call (a flash or memory-efficient kernel where one exists),
    so no mask buffer and no context length are needed.
    """

    def __init__(self, d_in, d_out, num_heads, dropout=0.0, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.d_out = d_out
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.proj = nn.Linear(d_out, d_out)
        self.dropout = dropout  # a probability: SDPA applies it only while training

    def forward(self, x):
        batch_size, num_tokens, _ = x.shape
        qkv = self.qkv(x).view(batch_size, num_tokens, 3, self.num_heads, self.head_dim)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4)  # each (b, heads, tokens, head_dim)
        context = F.scaled_dot_product_attention(
            queries, keys, values, dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
        )
        context = context.transpose(1, 2).reshape(batch_size, num_tokens, self.d_out)
        return self.proj(context)


class PaddedVocabHead(nn.Module):
    """Step 9: the output layer with rows up to `padded_size`, read only up to `vocab_size`.

    Matrix kernels are fastest when a dimension is a multiple of 64, and 50,257
    is odd. The padded rows are computed, then sliced away, so they never enter
    the loss nor win an argmax, and their gradient is exactly zero.
    """

    def __init__(self, out_head, padded_size):
        super().__init__()
        vocab_size, emb_dim = out_head.weight.shape
        self.vocab_size = vocab_size
        padding = out_head.weight.new_zeros(padded_size - vocab_size, emb_dim)
        self.weight = nn.Parameter(torch.cat([out_head.weight.detach(), padding]))

    def forward(self, x):
        return F.linear(x, self.weight)[..., :self.vocab_size]


def apply_model_steps(model, steps):
    """Rebuild `model`'s modules for steps 1, 6, 7 and 9, keeping every weight."""
    for block in model.trf_blocks:
        old = block.att
        d_out, d_in = old.W_query.weight.shape
        qkv_bias = old.W_query.bias is not None
        if 7 in steps:
            new = PyTorchMultiHeadAttention(d_in, d_out, old.num_heads, old.dropout.p, qkv_bias)
            copy_weights(new.qkv, torch.cat([old.W_query.weight, old.W_key.weight,
                                             old.W_value.weight]),
                         torch.cat([old.W_query.bias, old.W_key.bias, old.W_value.bias])
                         if qkv_bias else None)
            copy_weights(new.proj, old.out_proj.weight, old.out_proj.bias)
            block.att = new
        elif 1 in steps:
            new = OnTheFlyMaskAttention(d_in, d_out, old.context_length, old.dropout.p,
                                        old.num_heads, qkv_bias)
            new.load_state_dict({k: v for k, v in old.state_dict().items() if k != "mask"})
            block.att = new
        if 6 in steps:
            block.norm1, block.norm2 = native_layer_norm(block.norm1), native_layer_norm(
                block.norm2)
            block.ff.layers[1] = nn.GELU(approximate="tanh")  # GPT-2's tanh approximation
    if 6 in steps:
        model.final_norm = native_layer_norm(model.final_norm)
    if 9 in steps:
        model.out_head = PaddedVocabHead(model.out_head, PADDED_VOCAB_SIZE)
    return model


def copy_weights(linear, weight, bias):
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)


def native_layer_norm(norm):
    """Step 6: chapter 4's LayerNorm as `nn.LayerNorm` (one fused kernel, same formula)."""
    native = nn.LayerNorm(norm.scale.shape[0], eps=norm.eps)
    copy_weights(native, norm.scale, norm.shift)
    return native


def build_model(gpt_config, steps, device, seed=123):
    """A chapter-5 GPTModel with the model steps applied: always the baseline's weights.

    Step 8 (compiling) is left to the caller, which compiles the model it
    trains (under DDP the wrapped one) and evaluates this plain one.
    """
    torch.manual_seed(seed)
    model = apply_model_steps(GPTModel(gpt_config), steps)
    dtype = torch.bfloat16 if 5 in steps else torch.float32
    return model.to(device=device, dtype=dtype)


def make_optimizer(model, steps, learning_rate, weight_decay):
    """AdamW as in chapter 5; step 3 asks for the fused kernel (CPUs have one too)."""
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay,
                             fused=True if 3 in steps else None)


def configure_backend(steps):
    """Step 2: float32 matrix products may use TF32 tensor cores (GPUs only)."""
    torch.set_float32_matmul_precision("high" if 2 in steps else "highest")


# ---------------------------------------------------------------- data

def load_training_text(data_dir=None):
    """(name, text): the .txt files of `data_dir`, else Middlemarch (Gutenberg #145).

    Middlemarch is what the book repository trains on; it is downloaded beside
    this file once (or copied from $LLMS_FROM_SCRATCH_MIRROR). Offline we say so
    in one line and train on the course's own text, the-verdict.txt, or, if no
    copy of that is around either, on the short text shipped with this folder.
    """
    if data_dir is not None:
        files = sorted(Path(data_dir).glob("*.txt"))
        if not files:
            raise ValueError(f"{data_dir} holds no .txt file to train on")
        return (f"{len(files)} file(s) in {data_dir}",
                "<|endoftext|>".join(path.read_text(encoding="utf-8") for path in files))
    try:
        path = download_file(MIDDLEMARCH_URL, SCRIPT_DIR / "middlemarch.txt")
    except DownloadError:
        path = the_verdict_or_fallback()
        print(f"Could not download middlemarch.txt (no network and no copy in "
              f"$LLMS_FROM_SCRATCH_MIRROR): training on {path.name} instead.")
    return path.name, path.read_text(encoding="utf-8")


def the_verdict_or_fallback():
    try:
        return download_file(THE_VERDICT_URL, SCRIPT_DIR / "the-verdict.txt",
                             sha256=THE_VERDICT_SHA256)
    except DownloadError:
        return FALLBACK_TEXT


def count_batches(text, tokenizer, context_length, batch_size, train_ratio=0.90):
    """(training batches, validation batches) that the loaders will cut from `text`."""
    split_idx = int(train_ratio * len(text))

    def windows(part):
        n_tokens = len(tokenizer.encode(part, allowed_special={"<|endoftext|>"}))
        return len(range(0, n_tokens - context_length, context_length))

    return windows(text[:split_idx]) // batch_size, -(-windows(text[split_idx:]) // batch_size)


def ladder_loaders(text, context_length, batch_size, pin_memory=False, num_workers=0,
                 train_ratio=0.90):
    """The book repository's split (90/10, stride = context) and loaders."""
    split_idx = int(train_ratio * len(text))
    train_loader = create_dataloader_v1(
        text[:split_idx], batch_size=batch_size, max_length=context_length,
        stride=context_length, drop_last=True, shuffle=True, num_workers=num_workers)
    val_loader = create_dataloader_v1(
        text[split_idx:], batch_size=batch_size, max_length=context_length,
        stride=context_length, drop_last=False, shuffle=False, num_workers=num_workers)
    if pin_memory:  # step 4: the loaders hand out batches in page-locked memory
        train_loader.pin_memory = val_loader.pin_memory = True
    return train_loader, val_loader


# ---------------------------------------------------------------- training with timing

def train_model_simple_with_timing(model, train_loader, val_loader, optimizer, device,
                                   num_epochs, eval_freq, eval_iter, start_context,
                                   tokenizer=None, *, max_steps=None, step_log=None,
                                   eval_model=None):
    """Chapter 5's `train_model_simple`, timing every training step.

    Prints the losses and the step's tokens per second every `eval_freq` steps,
    and returns (train_losses, val_losses, track_tokens) like the book's. Only
    the training steps are timed (the device is synchronized before the clock
    is read), not the evaluations and samples. `max_steps` ends the run early;
    `step_log`, a list, receives one dict per step (loss, tokens, seconds).
    `eval_model` (default `model`) is evaluated and writes the samples: the
    plain model behind a compiled or DDP one (no recompiling for every new
    length, no gradient synchronisation).
    """
    eval_model = model if eval_model is None else eval_model
    train_losses, val_losses, track_tokens = [], [], []
    tokens_seen, global_step = 0, -1
    step_times, step_tokens = [], []
    for epoch in range(num_epochs):
        if hasattr(train_loader.sampler, "set_epoch"):  # DistributedSampler: new order
            train_loader.sampler.set_epoch(epoch)
        model.train()
        for input_batch, target_batch in train_loader:
            synchronize(device)
            start = time.perf_counter()
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            synchronize(device)
            seconds = time.perf_counter() - start
            tokens_seen += input_batch.numel()
            global_step += 1
            step_times.append(seconds)
            step_tokens.append(input_batch.numel())
            if step_log is not None:
                step_log.append({"step": global_step, "loss": loss.item(),
                                 "tokens": input_batch.numel(), "seconds": seconds})

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(eval_model, train_loader, val_loader,
                                                      device, eval_iter)
                model.train()
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): Train loss {train_loss:.3f}, "
                      f"Val loss {val_loss:.3f}, Step tok/sec: "
                      f"{round(input_batch.numel() / seconds)}")
            if max_steps is not None and global_step + 1 >= max_steps:
                break
        if tokenizer is not None:
            generate_and_print_sample(eval_model, tokenizer, device, start_context)
        if max_steps is not None and global_step + 1 >= max_steps:
            break

    print(f"Avg tok/sec: {average_tokens_per_second(step_tokens, step_times):,.0f} "
          "(training steps only, the first one left out as warm-up)")
    print(peak_memory_line(device))
    return train_losses, val_losses, track_tokens


def average_tokens_per_second(step_tokens, step_times):
    """Tokens per second over all steps but the first (allocations, compilation)."""
    if len(step_times) > 1:
        step_tokens, step_times = step_tokens[1:], step_times[1:]
    return sum(step_tokens) / sum(step_times) if step_times else float("nan")


def peak_memory_gb(device):
    """(allocated, reserved) GB on a GPU; on a CPU the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9, torch.cuda.max_memory_reserved() / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux
    return rss, rss


def peak_memory_line(device):
    allocated, reserved = peak_memory_gb(device)
    if device.type == "cuda":
        return f"Allocated memory: {allocated:.4f} GB, reserved memory: {reserved:.4f} GB"
    return f"Peak resident memory of this process: {allocated:.4f} GB"


def tokenizer_gpt2():
    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    return tiktoken.get_encoding("gpt2")


def save_loss_plot(path, num_epochs, tokens_seen, train_losses, val_losses):
    """loss.pdf as in the book, replaced whole or not at all (downloads.atomic_write)."""
    if not train_losses:
        return
    epochs_seen = torch.linspace(0, num_epochs, len(train_losses))
    fig = plot_losses(epochs_seen, tokens_seen, train_losses, val_losses)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="pdf")


# ---------------------------------------------------------------- settings and the run

# Copied from ch05/01_main-chapter-code/gpt_train.py::REQUIRED_SETTINGS
REQUIRED_SETTINGS = ("learning_rate", "num_epochs", "batch_size", "weight_decay")
# Every setting the command line sets directly, once: key: (flag, kind, default, help).
# The defaults are the book repository's run; each script overrides num_epochs and
# eval_freq with its own (add_ladder_arguments), and from Python the first four are
# required (REQUIRED_SETTINGS).
LADDER_SETTINGS = {
    "learning_rate": ("--lr", positive_float, 5e-4, "AdamW learning rate"),
    "num_epochs": ("--epochs", positive_int, 15, "passes over the training text"),
    "batch_size": ("--batch-size", positive_int, 8,
                   "sequences per batch (per process under torchrun)"),
    "weight_decay": ("--weight-decay", non_negative_float, 0.1, "AdamW weight decay"),
    "large_batch_size": ("--large-batch-size", positive_int, 32,
                         "sequences per batch under step 10"),
    "eval_freq": ("--eval-freq", positive_int, 15, "print the losses every this many steps"),
    "eval_iter": ("--eval-iter", positive_int, 1, "batches per loss measurement"),
    "max_steps": ("--max-steps", positive_int, None,
                  "stop after this many training steps (for measurements)"),
    "data_dir": ("--data-dir", None, None,
                 "train on the .txt files in this folder instead of Middlemarch"),
    "threads": ("--threads", positive_int, None,
                "CPU threads for PyTorch (None: PyTorch's choice)"),
    "num_workers": ("--num-workers", non_negative_int, 0,
                    "data-loader worker processes (the book's 4 only help with cores to spare)"),
    "seed": ("--seed", int, 123, "seed for weights and shuffling"),
    "output_dir": ("--output-dir", writable_folder, None, "write loss.pdf there (None: no plot)"),
    "loss_log": ("--loss-log", writable_file, None,
                 "write every step's loss, tokens/s and peak memory to this JSON file"),
}
# What a settings dict from Python may leave out: the table's defaults, and the
# settings the command line sets in its own way (--steps, --device, --no-sample).
LADDER_DEFAULTS = {
    **{key: entry[2] for key, entry in LADDER_SETTINGS.items() if key not in REQUIRED_SETTINGS},
    "steps": (),              # the ladder's steps to switch on (numbers 1-10)
    "device": "auto",         # auto, cpu, cuda or mps (or a torch.device)
    "sample": True,           # print a greedy sample after each epoch
    "start_context": "Every effort moves you",
}


class SettingError(ValueError):
    """A setting that cannot work, found before training starts."""

    def __init__(self, key, problem):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def flag_of(key):
    """The command-line flag behind a setting, so an error names what the user typed."""
    if key in LADDER_SETTINGS:
        return LADDER_SETTINGS[key][0]
    return "--" + key.replace("_", "-")


def checked_ladder_settings(settings):
    """The settings with defaults filled in; SettingError naming the first bad one."""
    missing = [key for key in REQUIRED_SETTINGS if key not in settings]
    if missing:
        raise SettingError(missing[0], "missing from the settings")
    unknown = sorted(set(settings) - set(REQUIRED_SETTINGS) - set(LADDER_DEFAULTS))
    if unknown:
        raise SettingError(unknown[0], "not a setting of this script")
    settings = {**LADDER_DEFAULTS, **settings}
    steps = settings["steps"]
    if isinstance(steps, str):
        try:
            steps = parse_steps(steps)
        except ValueError as err:
            raise SettingError("steps", str(err)) from None
    unknown_steps = [n for n in steps if n not in STEPS]
    if unknown_steps:
        raise SettingError("steps", f"no step {unknown_steps[0]}: the ladder has steps "
                                    f"1-{len(STEPS)}")
    settings["steps"] = tuple(sorted(set(steps)))
    for key in ("num_epochs", "batch_size", "eval_freq", "eval_iter", "large_batch_size"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SettingError(key, f"must be a whole number >= 1, got {value!r}")
    for key in ("max_steps", "threads"):
        value = settings[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise SettingError(key, f"must be a whole number >= 1, got {value!r}")
    if not settings["learning_rate"] > 0:
        raise SettingError("learning_rate", f"must be > 0, got {settings['learning_rate']!r}")
    if not settings["weight_decay"] >= 0:
        raise SettingError("weight_decay", f"must be >= 0, got {settings['weight_decay']!r}")
    data_dir = settings["data_dir"]
    if data_dir is not None and not Path(data_dir).is_dir():
        raise SettingError("data_dir", f"{data_dir} is not a folder")
    return settings


def device_for(settings):
    """The torch.device of the settings, with every chosen step able to run there."""
    device = settings["device"]
    if not isinstance(device, torch.device):
        try:
            device = resolve_device(device)
        except ValueError as err:
            raise SettingError("device", str(err)) from None
    for number, why in steps_that_cannot_run(settings["steps"], device):
        raise SettingError("steps", f"step {number} ({STEPS[number].name}) cannot run on "
                                    f"{device.type}: {why}")
    return device


@dataclass
class PreparedRun:
    settings: dict
    device: torch.device
    tokenizer: object
    text: str
    batch_size: int


def prepare(gpt_config, settings, world_size=1):
    """Check everything that can fail before training: settings, device, text, batches."""
    settings = checked_ladder_settings(settings)
    context_length = gpt_config.get("context_length")
    if isinstance(context_length, bool) or not isinstance(context_length, int) \
            or context_length < 1:
        raise SettingError("context_length", f"must be a whole number >= 1, "
                                             f"got {context_length!r}")
    device = device_for(settings)
    tokenizer = tokenizer_gpt2()
    try:
        name, text = load_training_text(settings["data_dir"])
    except (ValueError, OSError) as err:
        raise SettingError("data_dir", str(err)) from None
    if not text.strip():
        raise SettingError("data_dir", f"{name} holds no text")
    batch_size = settings["large_batch_size"] if 10 in settings["steps"] else \
        settings["batch_size"]
    train_batches, val_batches = count_batches(text, tokenizer, context_length,
                                               batch_size * world_size)
    if train_batches == 0 or val_batches == 0:
        key = "large_batch_size" if 10 in settings["steps"] else "batch_size"
        raise SettingError(key, f"{name} is too short for batches of {batch_size} x "
                           f"{world_size} process(es) x context length {context_length}: "
                           f"{train_batches} training and {val_batches} validation batches; "
                           "use a smaller batch, a shorter --context-length or a longer text")
    print(f"Training text: {name}, {len(text):,} characters")
    return PreparedRun(settings, device, tokenizer, text, batch_size)


def describe_steps(steps):
    return ", ".join(f"{n}. {STEPS[n].name}" for n in steps) or "none (the book's baseline)"


def write_report_json(path, data):
    with atomic_write(path) as f:
        f.write(json.dumps(data, indent=1))


def run_report(settings, device, step_log):
    """The numbers a benchmark compares: every step's loss, the speed, the peak memory."""
    tokens = [entry["tokens"] for entry in step_log]
    seconds = [entry["seconds"] for entry in step_log]
    return {"steps": list(settings["steps"]), "losses": [entry["loss"] for entry in step_log],
            "tokens_per_second": average_tokens_per_second(tokens, seconds),
            "step_seconds": seconds, "peak_memory_gb": peak_memory_gb(device)[1],
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(device), "ld_preload": os.environ.get("LD_PRELOAD", "")}


def train_single_process(gpt_config, settings):
    """`main` of 00_orig.py and 01_opt_single_gpu.py: train with the chosen steps."""
    run = prepare(gpt_config, settings)
    settings, device = run.settings, run.device
    if settings["threads"] is not None:
        torch.set_num_threads(settings["threads"])
    steps = settings["steps"]
    configure_backend(steps)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads; "
          f"steps: {describe_steps(steps)}")

    torch.manual_seed(settings["seed"])
    train_loader, val_loader = ladder_loaders(
        run.text, gpt_config["context_length"], run.batch_size, pin_memory=4 in steps,
        num_workers=settings["num_workers"])
    model = build_model(gpt_config, steps, device, settings["seed"])
    train_model = torch.compile(model) if 8 in steps else model
    optimizer = make_optimizer(model, steps, settings["learning_rate"],
                               settings["weight_decay"])
    torch.manual_seed(settings["seed"])  # the same shuffling and dropout for every step set
    step_log = []
    train_losses, val_losses, tokens_seen = train_model_simple_with_timing(
        train_model, train_loader, val_loader, optimizer, device, settings["num_epochs"],
        settings["eval_freq"], settings["eval_iter"], settings["start_context"],
        run.tokenizer if settings["sample"] else None, max_steps=settings["max_steps"],
        step_log=step_log, eval_model=model)
    if settings["loss_log"] is not None:
        write_report_json(settings["loss_log"], run_report(settings, device, step_log))
    if settings["output_dir"] is not None:
        Path(settings["output_dir"]).mkdir(parents=True, exist_ok=True)
        save_loss_plot(Path(settings["output_dir"]) / "loss.pdf", settings["num_epochs"],
                       tokens_seen, train_losses, val_losses)
    return train_losses, val_losses, tokens_seen, model


# ---------------------------------------------------------------- the command line

CPU_SLOWER = {5: "this CPU has no bfloat16 units (measured slower)",
              10: "a larger batch changes the training, not just its speed"}


def automatic_steps(device):
    """'auto': every step that runs on this device and, on a CPU, makes it faster."""
    chosen = []
    for number in STEPS:
        if steps_that_cannot_run((number,), device):
            continue
        if device.type == "cpu" and number in CPU_SLOWER:
            continue
        chosen.append(number)
    return tuple(chosen)


def add_ladder_arguments(parser, defaults, steps=True):
    """The flags shared by the three scripts; `defaults` holds each script's book values."""
    if steps:
        parser.add_argument("--steps", default="auto",
                            help="steps to switch on: e.g. 1,3,6-9, 'all', 'none', or 'auto' "
                                 "(every step that makes this device faster: all ten on a "
                                 "GPU; 1,3,6,7,8,9 on a CPU)")
    parser.add_argument("--model", choices=sorted(LADDER_MODELS), default="124M",
                        help="model size: the book's 124M, or 'small'/'tiny' for CPUs")
    parser.add_argument("--drop-rate", type=float, default=None,
                        help="dropout rate (None: the model's, the book's 0.1)")
    parser.add_argument("--context-length", type=positive_int, default=None,
                        help="tokens per training sequence (None: the model's; the "
                             "book's 1,024 for 124M)")
    add_settings(parser, {key: (flag, kind, defaults.get(key, default), help_text)
                          for key, (flag, kind, default, help_text) in LADDER_SETTINGS.items()})
    parser.add_argument("--no-sample", action="store_true",
                        help="skip the greedy sample after each epoch")
    add_device_argument(parser)


def config_and_settings(parser, args, steps):
    """(gpt_config, settings) from parsed flags; one-line errors for multi-flag problems."""
    base = LADDER_MODELS[args.model]
    context_length = args.context_length or base["context_length"]
    if context_length > base["context_length"]:
        parser.error(f"argument --context-length: {context_length} is longer than the "
                     f"{args.model} model's {base['context_length']}")
    if isinstance(steps, str):
        try:
            steps = automatic_steps(args.device) if steps == "auto" else parse_steps(steps)
        except ValueError as err:
            parser.error(f"argument --steps: {err}")
    gpt_config = {**base, "context_length": context_length}
    if args.drop_rate is not None:
        if not 0.0 <= args.drop_rate < 1.0:
            parser.error(f"argument --drop-rate: must be in [0, 1), got {args.drop_rate}")
        gpt_config["drop_rate"] = args.drop_rate
    settings = {key: getattr(args, key) for key in LADDER_SETTINGS}
    settings.update(steps=steps, device=args.device, sample=not args.no_sample)
    try:
        device_for(checked_ladder_settings(settings))
    except SettingError as err:
        parser.error(f"argument {flag_of(err.key)}: {err.problem}")
    return gpt_config, settings


def run_or_exit(function, *args):
    """Run `function(*args)`; a SettingError found before training is one line, exit 2.

    The scripts' `main` checks what only the data can tell (an empty --data-dir,
    a text too short for one batch) and raises SettingError, as it must when a
    notebook calls it; on the command line that becomes the flag's one line.
    """
    try:
        return function(*args)
    except SettingError as err:
        exit_with_error(f"argument {flag_of(err.key)}: {err.problem}")
