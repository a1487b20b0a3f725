"""LoRA against full finetuning of the GPT-2 124M spam classifier: speed and memory.

    python lora_benchmark.py                                       # the book's sizes
    python lora_benchmark.py --steps 5 --warmup-steps 1            # quicker
    python lora_benchmark.py --test-mode                           # a tiny model, seconds

Both runs train the same model, the 124M GPT with chapter 6's two-class head,
on batches shaped like the spam data (8 messages of 120 tokens), with the same
AdamW settings as appendix E:

- full finetuning: every parameter is trained;
- LoRA: every original parameter is frozen and each linear layer gets a
  LoRA pair (rank 16, alpha 16, as in appendix E).

Speed and memory do not depend on the values of the weights or the tokens, so
the model starts from random weights and the batches are random token ids (no
download needed). Each mode runs in its own Python process, so each peak-memory
figure belongs to that mode alone. The script prints, per mode: trainable
parameters, the bytes of AdamW's state (two running averages per trainable
parameter) and of the gradients, the process's peak memory (on a GPU: the most
memory PyTorch allocated; on a CPU: the peak resident set size, which includes
Python and PyTorch themselves), and training steps per second after warm-up.
Run benchmarks one at a time: two at once time each other. (On a shared Linux
machine, `flock /tmp/llms-bench.lock python ...` queues them.)
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from previous_chapters import GPT_CONFIG_124M, GPTModel, calc_loss_batch
from script_helpers import (ScriptArgumentParser, add_device_argument, non_negative_int,
                            positive_float, positive_int, synchronize)
from tqdm import tqdm

FINETUNING_MODES = ("full", "lora")
BOOK_MODEL = {**GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True}
TINY_MODEL = {**BOOK_MODEL, "emb_dim": 32, "n_heads": 2, "n_layers": 2}
TEST_MODE_SETTINGS = {"steps": 3, "warmup_steps": 1, "batch_size": 2, "seq_len": 16}


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::LoRALayer
class LoRALayer(torch.nn.Module):
    """The low-rank update (alpha / rank) * x A B that LoRA adds to a frozen layer.

    A (in_dim x rank) starts random and B (rank x out_dim) starts at zero, so the
    update is zero until training changes B.
    """

    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank}")
        self.A = torch.nn.Parameter(torch.empty(in_dim, rank))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(rank, out_dim))
        self.rank = rank
        self.alpha = alpha
        self.scale = alpha / rank  # the printed book uses alpha alone (see above)

    def forward(self, x):
        return self.scale * (x @ self.A @ self.B)

    def extra_repr(self):  # shown by print(model)
        in_dim, out_dim = self.A.shape[0], self.B.shape[1]
        return f"in_dim={in_dim}, out_dim={out_dim}, rank={self.rank}, alpha={self.alpha}"


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::LinearWithLoRA
class LinearWithLoRA(torch.nn.Module):
    """An nn.Linear `linear` plus a LoRA update of the given rank and alpha."""

    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        # A and B live where the layer lives (CPU, GPU, or "meta" when only counting)
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha).to(
            device=linear.weight.device, dtype=linear.weight.dtype
        )

    def forward(self, x):
        return self.linear(x) + self.lora(x)


# Copied from appendix-E/01_main-chapter-code/appendix-E.ipynb::replace_linear_with_lora
def replace_linear_with_lora(model, rank, alpha):
    """Wrap every nn.Linear inside `model` (at any depth) in a LinearWithLoRA, in place."""
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha)


# Copied from ch03/02_bonus_efficient-multihead-attention/benchmark.py::describe_machine
def describe_machine(device):
    """One line naming the hardware the numbers come from."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple GPU (MPS), {platform.machine()}"
    cpu_name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_name = line.split(":", 1)[1].strip()
                break
    return (f"{cpu_name}, {os.cpu_count()} logical CPUs, "
            f"{torch.get_num_threads()} torch threads")


def parse_args(argv=None):
    """The command line as plain values: (--child's mode or None, device, run_mode's settings)."""
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=10,
                        help="timed training steps per mode")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=2,
                        help="untimed training steps first (memory allocation, caches)")
    parser.add_argument("--batch-size", type=positive_int, default=8,
                        help="messages per batch (chapter 6: 8)")
    parser.add_argument("--seq-len", type=positive_int, default=120,
                        help="tokens per message (chapter 6 pads to 120)")
    parser.add_argument("--lora-rank", type=positive_int, default=16, help="LoRA rank")
    parser.add_argument("--lora-alpha", type=positive_float, default=16, help="LoRA alpha")
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--test-mode", action="store_true",
                        help=f"a tiny GPT and {TEST_MODE_SETTINGS} (for tests)")
    # the parent runs each mode in a child process: --child names that mode
    parser.add_argument("--child", choices=FINETUNING_MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = {key: getattr(args, key) for key in ("steps", "warmup_steps", "batch_size",
                                                    "seq_len", "lora_rank", "lora_alpha", "seed")}
    if args.test_mode:
        settings.update(TEST_MODE_SETTINGS)
    settings["model_config"] = TINY_MODEL if args.test_mode else BOOK_MODEL
    context_length = settings["model_config"]["context_length"]
    if settings["seq_len"] > context_length:
        parser.error(f"argument --seq-len: must be at most {context_length}, "
                     "the model's context length")
    return args.child, args.device, settings


def build_classifier(model_config, mode, rank, alpha):
    """The 124M GPT with chapter 6's two-class head, prepared for `mode`."""
    model = GPTModel(model_config)
    model.out_head = torch.nn.Linear(model_config["emb_dim"], 2)
    if mode == "lora":
        for param in model.parameters():
            param.requires_grad = False
        replace_linear_with_lora(model, rank=rank, alpha=alpha)
    return model


def tensor_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def peak_memory_bytes(device):
    """Most memory this process used: PyTorch's allocations on CUDA, else peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    if device.type == "mps":
        return None  # PyTorch keeps no peak figure for MPS
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


def run_mode(mode, device, model_config, steps, warmup_steps, batch_size, seq_len,
             lora_rank, lora_alpha, seed):
    """Train `mode` for warm-up plus timed steps; return its measurements."""
    torch.manual_seed(seed)
    model = build_classifier(model_config, mode, lora_rank, lora_alpha).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    inputs = torch.randint(0, model_config["vocab_size"], (batch_size, seq_len), device=device)
    labels = torch.randint(0, 2, (batch_size,), device=device)

    def train_step():
        optimizer.zero_grad(set_to_none=False)  # keep gradient memory in the measurement
        loss = calc_loss_batch(inputs, labels, model, device)
        loss.backward()
        optimizer.step()
        return loss

    for _ in tqdm(range(warmup_steps), desc=f"{mode}: warm-up", leave=False):
        train_step()
    synchronize(device)
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=f"{mode}: timed steps", leave=False):
        loss = train_step()
    synchronize(device)
    seconds = time.perf_counter() - start

    trainable = [p for p in model.parameters() if p.requires_grad]
    state = [t for param_state in optimizer.state.values() for t in param_state.values()]
    return {
        "mode": mode,
        "trainable_params": sum(p.numel() for p in trainable),
        "optimizer_state_bytes": tensor_bytes(state),
        "gradient_bytes": tensor_bytes(p.grad for p in trainable),
        "peak_memory_bytes": peak_memory_bytes(device),
        "steps_per_second": steps / seconds,
        "final_loss": loss.item(),
    }


def run_child(mode, argv):
    """Run one mode in a fresh Python process; return the dictionary it prints last."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", mode]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {mode} run failed (exit status {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def megabytes(num_bytes):
    return "n/a" if num_bytes is None else f"{num_bytes / 1e6:,.1f}"


def print_table(results):
    rows = [
        ("trainable parameters", lambda r: f"{r['trainable_params']:,}"),
        ("AdamW state (MB)", lambda r: megabytes(r["optimizer_state_bytes"])),
        ("gradients (MB)", lambda r: megabytes(r["gradient_bytes"])),
        ("peak memory (MB)", lambda r: megabytes(r["peak_memory_bytes"])),
        ("training steps per second", lambda r: f"{r['steps_per_second']:.3g}"),
        ("seconds per training step", lambda r: f"{1 / r['steps_per_second']:.3g}"),
    ]
    by_mode = {r["mode"]: r for r in results}
    print("| | full finetuning | LoRA |")
    print("|---|---:|---:|")
    for label, cell in rows:
        print(f"| {label} | {cell(by_mode['full'])} | {cell(by_mode['lora'])} |")
    speedup = by_mode["lora"]["steps_per_second"] / by_mode["full"]["steps_per_second"]
    state_ratio = (by_mode["full"]["optimizer_state_bytes"]
                   / by_mode["lora"]["optimizer_state_bytes"])
    print(f"LoRA: {speedup:.2f}x the steps per second, "
          f"{state_ratio:.0f}x less optimizer state than full finetuning")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    child, device, settings = parse_args(argv)
    if child:
        print(json.dumps(run_mode(child, device, **settings)))
        return 0
    print(f"torch {torch.__version__}, device: {device} ({describe_machine(device)})")
    print(f"batch {settings['batch_size']} x {settings['seq_len']} tokens, "
          f"{settings['warmup_steps']} warm-up + {settings['steps']} timed steps, "
          f"LoRA rank {settings['lora_rank']}, alpha {settings['lora_alpha']:g}")
    results = [run_child(mode, argv) for mode in FINETUNING_MODES]
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
