"""Pretrain the chapter 5 GPT model on the token shards of prepare_dataset.py.

    python pretraining_simple.py --data-dir gutenberg_preprocessed --n-epochs 1
    python pretraining_simple.py --debug          # a tiny model, for a quick check
    python pretraining_simple.py --data-dir my_books  # a folder of plain .txt files
    python pretraining_simple.py --resume         # continue from the latest checkpoint

    # several processes: one per GPU (NCCL), or several on a CPU (gloo)
    torchrun --standalone --nproc_per_node 4 pretraining_simple.py --data-dir ...
    # several machines: run this on each, with the first machine's address
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 --rdzv-id gutenberg pretraining_simple.py --data-dir ...

The shards are read through `numpy.memmap`: the operating system pages in
the windows a batch needs, so memory stays flat however large the corpus.
The token stream is cut into windows of --context-length + 1 tokens (inputs,
and the same tokens moved by one as targets); the last --val-fraction of
the windows is held out for validation. Every epoch visits the training
windows in a new order drawn from --seed and the epoch number alone, so the
order does not depend on how many processes share the work.

Under torchrun each process takes an equal, disjoint slice of every global
batch of --batch-size windows, and DistributedDataParallel averages the
gradients: with the same seed the run computes what one process would (up
to float rounding). Only rank 0 prints and saves. If one process fails,
torchrun stops the others and exits with an error naming the failed rank.

--data-dir is a folder written by prepare_dataset.py, or any folder of
plain .txt files: those are tokenized once (with a progress bar) into the
same shard format in --output-dir/tokens, and reused while they stay the same.

Checkpoints (model, optimizer, step, position in the data, every rank's
random number generator state) are written atomically to
--output-dir/model_pg_<step>.pth; --resume continues from the newest one
exactly where the run stopped. Per-step losses go to --output-dir/log.jsonl.
What an interruption of an older version (or a full disk) may have left,
a cut-short newest checkpoint or a half-written last log line, is named in
one line and skipped: the run resumes from the last good state.
At the end the peak memory is printed (GPU memory on CUDA, else the
process's peak resident set size).
"""

import argparse
import json
import math
import os
import re
import sys
import time
import zipfile
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import tiktoken
import torch
import torch.distributed as dist
from downloads import atomic_write, cache_gpt2_tokenizer_files
from prepare_dataset import (INDEX_NAME, MB, TOKEN_DTYPE, DamagedIndex, list_books, read_index,
                             tokenize_to_shards)
from previous_chapters import GPT_CONFIG_124M, GPTModel, calc_loss_batch, generate_and_print_sample
from script_helpers import (ScriptArgumentParser, add_device_argument, exit_with_error,
                            non_negative_float, non_negative_int, positive_float, positive_int,
                            writable_folder)
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

# The book's tiny model for quick checks (no dropout, so runs are easy to compare).
DEBUG_CONFIG = {"vocab_size": 50257, "context_length": 10, "emb_dim": 12, "n_heads": 2,
                "n_layers": 2, "drop_rate": 0.0, "qkv_bias": False}
CHECKPOINT = re.compile(r"model_pg_(\d+)\.pth")
LOG_NAME = "log.jsonl"
TOKEN_CACHE = "tokens"  # below --output-dir: the shards of a folder of plain .txt files
TOKEN_CACHE_SHARD_MB = 500  # prepare_dataset.py's default shard size
START_CONTEXT = "Every effort moves you"


class TokenShards:
    """All shards of a prepare_dataset.py run, read as one long array of token ids.

    Each shard is memory-mapped, not loaded: reading a slice touches only the
    pages it covers. A slice that crosses a shard boundary is stitched together.
    """

    def __init__(self, data_dir):
        index = read_index(data_dir)
        self.arrays = [np.memmap(Path(data_dir) / shard["file"], dtype=TOKEN_DTYPE, mode="r")
                       for shard in index["shards"]]
        self.starts = np.cumsum([0] + [len(array) for array in self.arrays])
        self.total_tokens = int(self.starts[-1])

    def read(self, start, stop):
        """Token ids start..stop-1 of the whole stream, as int64."""
        parts = []
        shard = int(np.searchsorted(self.starts, start, side="right")) - 1
        while start < stop:
            offset = start - self.starts[shard]
            take = min(stop - start, len(self.arrays[shard]) - offset)
            parts.append(self.arrays[shard][offset:offset + take])
            start += take
            shard += 1
        return np.concatenate(parts).astype(np.int64)


class Windows:
    """Training and validation windows over the token stream, and their batches.

    Window i covers tokens i*L .. i*L+L (L = context length, one extra token
    for the last target), the chapter 2 sliding window with stride L.
    """

    def __init__(self, shards, context_length, val_fraction):
        self.shards = shards
        self.length = context_length
        count = len(range(0, shards.total_tokens - context_length, context_length))
        self.num_val = math.ceil(count * val_fraction)
        self.num_train = count - self.num_val

    def batch(self, window_ids):
        """(inputs, targets) for a list of window numbers (validation ones after training)."""
        rows = [self.shards.read(i * self.length, i * self.length + self.length + 1)
                for i in window_ids]
        tokens = torch.from_numpy(np.stack(rows))
        return tokens[:, :-1], tokens[:, 1:]

    def epoch_order(self, seed, epoch):
        """The training windows in this epoch's order: the same for any number of ranks."""
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        return torch.randperm(self.num_train, generator=generator)


@dataclass
class Position:
    """Where training stands: what a resumed run needs to continue exactly."""
    epoch: int = 0
    batch: int = 0        # next batch within the epoch
    step: int = -1        # global step of the last optimizer step (the book starts at -1)
    tokens_seen: int = 0


@dataclass
class Cluster:
    """This process's place among the processes torchrun started (1 without torchrun)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self):
        return dist.is_available() and dist.is_initialized()

    def share(self, items):
        """This rank's equal, disjoint part of `items` (a global batch)."""
        per_rank = len(items) // self.world_size
        return items[self.rank * per_rank:(self.rank + 1) * per_rank]

    def mean(self, values):
        """Average a 1-d tensor of per-rank means over all ranks."""
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values = values / self.world_size
        return values


def cluster_from_environment():
    """torchrun sets RANK, WORLD_SIZE and LOCAL_RANK for every process it starts."""
    return Cluster(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))


def device_for_process(requested, cluster):
    """The device for this process (`requested`: --device's): with GPUs, LOCAL_RANK's."""
    if requested.type == "cuda":
        return torch.device("cuda", cluster.local_rank % torch.cuda.device_count())
    return requested


def start_process_group(cluster, device, timeout_s):
    """Join the other processes: NCCL between GPUs, gloo on CPUs.

    `timeout_s` bounds how long a collective waits for a silent peer; a peer
    that crashes is noticed by torchrun, which then stops everyone at once.
    """
    if cluster.world_size == 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return  # a plain `python pretraining_simple.py`: nothing to join
    if sys.platform == "win32":
        os.environ["USE_LIBUV"] = "0"  # PyTorch's Windows builds have no libuv
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            rank=cluster.rank, world_size=cluster.world_size,
                            timeout=timedelta(seconds=timeout_s))


def autocast_for(device, dtype):
    """bfloat16 autocast on request: matrix products in bf16, sums and losses in fp32."""
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def evaluate_windows(model, windows, cluster, device, batch_size, eval_iter, dtype):
    """Mean loss over the first `eval_iter` batches of training and of validation windows."""
    model.eval()
    results = []
    with torch.no_grad(), autocast_for(device, dtype):
        for first, count in ((0, windows.num_train), (windows.num_train, windows.num_val)):
            num_batches = min(eval_iter, count // batch_size)
            losses = []
            for b in range(num_batches):
                ids = cluster.share(range(first + b * batch_size, first + (b + 1) * batch_size))
                losses.append(calc_loss_batch(*windows.batch(ids), model, device))
            results.append(torch.stack(losses).mean())
    model.train()
    train_loss, val_loss = cluster.mean(torch.stack(results).float()).tolist()
    return train_loss, val_loss


def training_checkpoints(output_dir):
    """The model_pg_<step>.pth files in `output_dir`, newest (highest step) first."""
    found = [(int(match.group(1)), path) for path in Path(output_dir).glob("model_pg_*.pth")
             if (match := CHECKPOINT.fullmatch(path.name))]
    return [path for _, path in sorted(found, reverse=True)]


def is_whole_checkpoint(path):
    """torch.save writes a zip archive whose directory comes last: a cut-short file lacks it."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def latest_training_checkpoint(output_dir, say=print):
    """The newest whole checkpoint; newer damaged ones are named (through `say`) and skipped."""
    for path in training_checkpoints(output_dir):
        if is_whole_checkpoint(path):
            return path
        say(f"{path.name} is damaged (cut short?): skipping it, resuming from an older one.")
    return None


def save_training_state(path, model, optimizer, position, config, run_facts, cluster, device):
    """Write a checkpoint atomically; every rank takes part (it sends its RNG state)."""
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    rng_states = [rng]
    if cluster.distributed:
        rng_states = [None] * cluster.world_size
        dist.all_gather_object(rng_states, rng)
    if cluster.rank != 0:
        return
    checkpoint = {"model_state_dict": model.state_dict(),
                  "optimizer_state_dict": optimizer.state_dict(),
                  "config": dict(config), "position": asdict(position),
                  "run": dict(run_facts), "rng_states": rng_states}
    with atomic_write(path, "wb") as file:
        torch.save(checkpoint, file)


def load_training_state(path, model, optimizer, cluster, device):
    """Restore a checkpoint; return the Position to continue from."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model_state_dict"])
    optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    rng_states = checkpoint["rng_states"]
    if len(rng_states) == cluster.world_size:
        torch.set_rng_state(rng_states[cluster.rank]["cpu"])
        if device.type == "cuda" and "cuda" in rng_states[cluster.rank]:
            torch.cuda.set_rng_state(rng_states[cluster.rank]["cuda"], device)
    elif cluster.rank == 0:
        print(f"Note: the checkpoint was written by {len(rng_states)} processes, this run has "
              f"{cluster.world_size}; dropout will draw different masks than before.")
    return Position(**checkpoint["position"])


class StepLog:
    """log.jsonl: one line per step ({"step", "loss", "tokens_seen"}) and per evaluation."""

    def __init__(self, output_dir, cluster):
        self.path = Path(output_dir) / LOG_NAME
        self.cluster = cluster
        self.pending = []  # (step, tokens_seen, loss tensor): read back only when flushed

    def keep_until(self, step):
        """After a resume: drop lines of steps after the checkpoint (they are redone).

        An interrupted append can leave half a line; it is dropped, and said so.
        """
        if self.cluster.rank != 0 or not self.path.exists():
            return
        kept, damaged = [], 0
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
                keep = record["step"] <= step
            except (json.JSONDecodeError, TypeError, KeyError):
                damaged += 1
                continue
            if keep:
                kept.append(line)
        if damaged:
            print(f"{self.path}: dropped {damaged} half-written line(s) of an interrupted run.")
        with atomic_write(self.path) as file:
            file.writelines(line + "\n" for line in kept)

    def add_step(self, step, tokens_seen, loss):
        # Keeping the tensor avoids a device sync (loss.item()) after every step.
        self.pending.append((step, tokens_seen, loss.detach().float()))

    def flush(self, extra=None):
        """Average the pending losses over ranks and append them (rank 0 writes)."""
        records = []
        if self.pending:
            losses = self.cluster.mean(torch.stack([loss for _, _, loss in self.pending]))
            records = [{"step": step, "loss": loss, "tokens_seen": tokens}
                       for (step, tokens, _), loss in zip(self.pending, losses.tolist(),
                                                              strict=True)]
            self.pending = []
        if extra:
            records.append(extra)
        if self.cluster.rank == 0 and records:
            with open(self.path, "a") as file:
                file.writelines(json.dumps(record) + "\n" for record in records)


def pretrain(model, optimizer, windows, settings, position, cluster, device, tokenizer,
             run_facts, config):
    """The training loop: the book's train_model_simple, resumable and distributed.

    `settings` is a dict of plain values with the command line's names (what
    `parse_args` returns beside the model configuration).
    """
    raw_model = model.module if isinstance(model, DistributedDataParallel) else model
    output_dir, batch_size = Path(settings["output_dir"]), settings["batch_size"]
    dtype = settings["dtype"]
    output_dir.mkdir(parents=True, exist_ok=True)
    log = StepLog(output_dir, cluster)
    steps_per_epoch = windows.num_train // batch_size
    last_step = settings["n_epochs"] * steps_per_epoch - 1
    if settings["max_steps"] is not None:
        last_step = min(last_step, settings["max_steps"] - 1)

    saved_step = position.step

    def checkpoint():
        nonlocal saved_step
        log.flush()
        saved_step = position.step
        save_training_state(output_dir / f"model_pg_{position.step}.pth", raw_model,
                            optimizer, position, config, run_facts, cluster, device)

    bar = tqdm(total=last_step + 1, initial=position.step + 1, unit="step",
               disable=cluster.rank != 0 or not settings["progress"], file=sys.stderr)
    start_time, start_tokens = time.perf_counter(), position.tokens_seen
    model.train()
    while position.step < last_step:
        order = windows.epoch_order(settings["seed"], position.epoch)
        while position.batch < steps_per_epoch and position.step < last_step:
            if settings["fail_rank"] == cluster.rank and position.step + 1 == settings["fail_step"]:
                raise RuntimeError(f"rank {cluster.rank}: simulated failure (--fail-rank)")
            ids = order[position.batch * batch_size:(position.batch + 1) * batch_size]
            optimizer.zero_grad()
            with autocast_for(device, dtype):
                loss = calc_loss_batch(*windows.batch(cluster.share(ids.tolist())), model, device)
            loss.backward()  # under DDP this also averages the gradients of all ranks
            optimizer.step()
            position.batch += 1
            position.step += 1
            position.tokens_seen += batch_size * windows.length
            log.add_step(position.step, position.tokens_seen, loss)
            tokens_per_s = (position.tokens_seen - start_tokens) / (
                time.perf_counter() - start_time)
            bar.update()
            bar.set_postfix_str(f"{tokens_per_s:,.0f} tokens/s", refresh=False)

            if position.step % settings["eval_freq"] == 0:
                train_loss, val_loss = evaluate_windows(model, windows, cluster, device,
                                                        batch_size, settings["eval_iter"], dtype)
                log.flush({"step": position.step, "train_loss": train_loss,
                           "val_loss": val_loss})
                if cluster.rank == 0:
                    bar.write(f"Ep {position.epoch + 1} (Step {position.step:06d}): "
                              f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}, "
                              f"{tokens_per_s:,.0f} tokens/s", file=sys.stdout)
            if position.step % settings["print_sample_iter"] == 0 and cluster.rank == 0:
                generate_and_print_sample(raw_model, tokenizer, device, START_CONTEXT)
            if (position.step + 1) % settings["save_ckpt_freq"] == 0:
                checkpoint()
        if position.batch == steps_per_epoch:
            position.epoch, position.batch = position.epoch + 1, 0
    bar.close()
    log.flush()  # reads the last losses back, so the device has finished every step
    seconds = time.perf_counter() - start_time
    if saved_step != position.step:
        checkpoint()
    return position, (position.tokens_seen - start_tokens) / seconds if seconds else 0.0


def parse_args(argv=None):
    """The command line as plain values: (the model configuration, the settings dict).

    The settings hold every flag's value under its name, and `shard_dir`: the
    folder of token shards to train on. Everything is checked here, before any
    long work starts: a bad value exits 2 with one line naming its flag.
    """
    parser = ScriptArgumentParser(
        description="Pretrain GPT on tokenized Project Gutenberg books (one or many processes).",
    )
    option = parser.add_argument
    option("--data-dir", default="gutenberg_preprocessed",
           help="folder written by prepare_dataset.py (index.json and shards), "
                "or a folder of plain .txt files")
    option("--output-dir", type=writable_folder, default="model_checkpoints",
           help="where checkpoints and log.jsonl are written")
    option("--n-epochs", type=positive_int, default=1, help="passes over the training windows")
    option("--batch-size", type=positive_int, default=4,
           help="windows per optimizer step, over all processes together")
    option("--context-length", type=positive_int, default=None,
           help="tokens per window (None: 1024, or 10 with --debug)")
    option("--lr", type=positive_float, default=5e-4, help="AdamW learning rate")
    option("--weight-decay", type=non_negative_float, default=0.1, help="AdamW weight decay")
    option("--eval-freq", type=positive_int, default=100,
           help="evaluate every this many optimizer steps")
    option("--eval-iter", type=positive_int, default=1, help="batches per evaluation")
    option("--print-sample-iter", type=positive_int, default=1000,
           help="print a greedy sample every this many steps")
    option("--save-ckpt-freq", type=positive_int, default=100_000,
           help="save a checkpoint every this many steps (and always at the end)")
    option("--max-steps", type=positive_int, default=None,
           help="stop (with a checkpoint) after this many steps in all; --resume goes on")
    option("--val-fraction", type=float, default=0.1,
           help="share of the windows (at the end of the stream) held out for validation")
    add_device_argument(parser)  # under torchrun, cuda means one GPU per process
    option("--dtype", choices=["float32", "bfloat16"], default="float32",
           help="bfloat16: mixed precision with autocast (parameters stay float32)")
    option("--seed", type=int, default=123, help="seed for weights, order, dropout")
    option("--drop-rate", type=float, default=None,
           help="dropout rate (None: the model's, 0.1; 0.0 with --debug)")
    option("--debug", type=debug_switch, nargs="?", const=True, default=False,
           help="a tiny model (2 layers, 12-dim embeddings) for quick checks; "
                "--debug, --debug true or --debug false")
    option("--resume", action="store_true",
           help="continue from the newest checkpoint in --output-dir")
    option("--dist-timeout", type=positive_float, default=600,
           help="seconds a process waits for a silent peer before giving up")
    # Test-only: make rank --fail-rank raise at step --fail-step (to see a failure end the job).
    option("--fail-rank", type=non_negative_int, default=None, help=argparse.SUPPRESS)
    option("--fail-step", type=non_negative_int, default=0, help=argparse.SUPPRESS)
    option("--no-progress", dest="progress", action="store_false",
           help="no progress bar")
    args = parser.parse_args(argv)
    config = model_config(args.debug, args.context_length, args.drop_rate)
    shard_dir = check_training_args(parser, args, config["context_length"])
    return config, {**vars(args), "shard_dir": shard_dir}


def debug_switch(text):
    """The book repository writes `--debug true`; `--debug` alone means true as well."""
    answers = {"true": True, "false": False}
    if text.lower() not in answers:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return answers[text.lower()]


def check_training_args(parser, args, context_length):
    """Exit with one line naming the argument when flags cannot work together.

    Part of parsing (`parse_args` calls it). Returns the folder of the shards.
    """
    if not 0 < args.val_fraction < 1:
        parser.error("argument --val-fraction: must be between 0 and 1")
    if args.drop_rate is not None and not 0 <= args.drop_rate < 1:
        parser.error("argument --drop-rate: must be in [0, 1)")

    cluster = cluster_from_environment()
    if args.batch_size % cluster.world_size:
        parser.error(f"argument --batch-size: {args.batch_size} windows cannot be split "
                     f"evenly over {cluster.world_size} processes")
    device = device_for_process(args.device, cluster)
    if (args.dtype == "bfloat16" and device.type == "cuda"
            and not torch.cuda.is_bf16_supported()):
        parser.error("argument --dtype: this GPU does not support bfloat16")

    shard_dir = shard_folder(args.data_dir, args.output_dir, cluster.world_size, parser.error)
    if shard_dir == args.data_dir:
        check_shard_folder(shard_dir, args.data_dir, context_length, args.val_fraction,
                           args.batch_size, parser.error)
    output_dir = args.output_dir
    found = training_checkpoints(output_dir) if output_dir.is_dir() else []
    if args.resume and not any(map(is_whole_checkpoint, found)):
        parser.error(f"argument --resume: no whole model_pg_<step>.pth in {output_dir}")
    if found and not args.resume:
        parser.error(f"argument --output-dir: {output_dir} already holds checkpoints; "
                     "pass --resume to continue, or choose another folder")
    return shard_dir


def shard_folder(data_dir, output_dir, world_size, error):
    """Where the shards are: --data-dir itself, or the token cache for plain .txt files.

    `error(message)` is called (and must not return) when there are none.
    """
    folder = Path(data_dir)
    if folder.exists() and not folder.is_dir():
        error(f"argument --data-dir: {folder} is a file, not a folder")
    try:
        index = read_index(folder)
    except DamagedIndex as err:
        error(f"argument --data-dir: {err}; run prepare_dataset.py again to repair it")
    if index is not None:
        return data_dir
    if not folder.is_dir() or not list_books(folder):
        error(f"argument --data-dir: no {INDEX_NAME} and no .txt files in "
              f"{data_dir} (run prepare_dataset.py first)")
    if world_size > 1:
        error(f"argument --data-dir: {data_dir} holds plain .txt files; with "
              "several processes, tokenize them first with prepare_dataset.py")
    return Path(output_dir) / TOKEN_CACHE


def check_shard_folder(shard_dir, data_dir, context_length, val_fraction, batch_size, error):
    """Are the shards whole, and do they make enough windows? If not, `error(message)`."""
    index = read_index(shard_dir)
    if not index["complete"]:
        error(f"argument --data-dir: {data_dir} is incomplete "
              "(rerun prepare_dataset.py to finish it)")
    for shard in index["shards"]:
        path = Path(shard_dir) / shard["file"]
        if not path.is_file() or path.stat().st_size != shard["tokens"] * TOKEN_DTYPE.itemsize:
            error(f"argument --data-dir: {path} is missing or has the wrong size")
    windows = len(range(0, index["total_tokens"] - context_length, context_length))
    num_val = math.ceil(windows * val_fraction)
    if min(windows - num_val, num_val) < batch_size:
        error(f"argument --data-dir: {index['total_tokens']:,} tokens make "
              f"{windows - num_val} training and {num_val} validation windows of "
              f"{context_length} tokens; each needs at least --batch-size {batch_size}")


def tokenize_text_folder(data_dir, shard_dir, context_length, val_fraction, batch_size,
                         progress=True):
    """Plain .txt files in --data-dir: tokenize them into the cache (once), then check them."""
    print(f"{data_dir} holds plain .txt files: tokenizing them into {shard_dir}")
    tokenize_to_shards(data_dir, shard_dir, int(TOKEN_CACHE_SHARD_MB * MB) // TOKEN_DTYPE.itemsize,
                       progress=progress)
    check_shard_folder(shard_dir, data_dir, context_length, val_fraction, batch_size,
                       exit_with_error)


def report_peak_memory(device):
    """The book's closing line on CUDA; elsewhere the peak resident set size."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        print(f"Maximum GPU memory allocated: {peak / 1e9:.2f} GB")
        return
    try:
        import resource  # Unix only
    except ImportError:
        return
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: KiB
    print(f"Peak memory (RSS) of this process: {peak_bytes / 1e9:.2f} GB")


def model_config(debug=False, context_length=None, drop_rate=None):
    """The GPT configuration: 124M (or the tiny debug model), with the overrides that are set."""
    config = dict(DEBUG_CONFIG if debug else GPT_CONFIG_124M)
    if context_length is not None:
        config["context_length"] = context_length
    if drop_rate is not None:
        config["drop_rate"] = drop_rate
    return config


def check_resume_matches(path, config, run_facts):
    """A checkpoint only continues the same model on the same data and batches."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for what, saved, now in (("model configuration", checkpoint["config"], config),
                             ("data or batch settings", checkpoint["run"], run_facts)):
        if saved != now:
            differ = sorted(key for key in set(saved) | set(now) if saved.get(key) != now.get(key))
            exit_with_error(f"argument --resume: {path.name} has another {what} "
                            f"({', '.join(differ)}): use the same flags as before")


@record  # under torchrun, a failing rank's error is shown in torchrun's summary
def main(argv=None):
    config, settings = parse_args(argv)
    cluster = cluster_from_environment()
    device = device_for_process(settings["device"], cluster)
    data_dir, shard_dir = settings["data_dir"], settings["shard_dir"]
    output_dir, seed = Path(settings["output_dir"]), settings["seed"]
    batch_size, val_fraction = settings["batch_size"], settings["val_fraction"]
    if shard_dir != data_dir:
        tokenize_text_folder(data_dir, shard_dir, config["context_length"], val_fraction,
                             batch_size, settings["progress"])
    windows = Windows(TokenShards(shard_dir), config["context_length"], val_fraction)
    run_facts = {"total_tokens": windows.shards.total_tokens, "batch_size": batch_size,
                 "val_fraction": val_fraction, "seed": seed}
    checkpoint_path = None
    if settings["resume"]:
        checkpoint_path = latest_training_checkpoint(
            output_dir, say=print if cluster.rank == 0 else lambda message: None)
    if checkpoint_path is not None:
        check_resume_matches(checkpoint_path, config, run_facts)

    start_process_group(cluster, device, settings["dist_timeout"])
    try:
        if cluster.rank == 0:
            print(f"torch {torch.__version__}, {cluster.world_size} process(es) on {device.type}"
                  f"{', bfloat16 autocast' if settings['dtype'] == 'bfloat16' else ''}; "
                  f"{windows.shards.total_tokens:,} tokens: {windows.num_train:,} training and "
                  f"{windows.num_val:,} validation windows of {windows.length} tokens")
        cache_gpt2_tokenizer_files()
        tokenizer = tiktoken.get_encoding("gpt2")

        torch.manual_seed(seed)  # the same initial weights in every process
        model = GPTModel(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"],
                                      weight_decay=settings["weight_decay"])
        torch.manual_seed(seed + cluster.rank)  # but different dropout masks
        position = Position()
        if checkpoint_path is not None:
            position = load_training_state(checkpoint_path, model, optimizer, cluster, device)
            StepLog(output_dir, cluster).keep_until(position.step)
            if cluster.rank == 0:
                print(f"Resuming from {checkpoint_path.name}: epoch {position.epoch + 1}, "
                      f"step {position.step}")
        if cluster.distributed:
            # The only buffers are the constant causal masks: no need to re-send them
            # from rank 0 before every forward pass (DDP's default).
            model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False)

        position, tokens_per_s = pretrain(model, optimizer, windows, settings, position, cluster,
                                          device, tokenizer, run_facts, config)
        if cluster.rank == 0:
            print(f"Done: step {position.step}, {position.tokens_seen:,} tokens seen, "
                  f"{tokens_per_s:,.0f} tokens/s; checkpoint "
                  f"{output_dir / f'model_pg_{position.step}.pth'}")
            report_peak_memory(device)
    finally:
        if cluster.distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
