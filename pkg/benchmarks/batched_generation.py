"""Batched vs. one-by-one greedy generation with the package's KV-cache GPT-2.

Eight prompts of different lengths, each continued by the same number of new
tokens, three ways: chapter 4's `generate_text_simple` (no cache) one prompt
at a time; `llms_from_scratch.kv_cache.generate` one prompt at a time; and
`llms_from_scratch.kv_cache_batched.generate` with all prompts in one
left-padded batch. Prints tokens per second for each, checks that all three
produce the same ids, and names the machine, its load and the torch version.

    python pkg/benchmarks/batched_generation.py                   # GPT-2 124M, random weights
    python pkg/benchmarks/batched_generation.py --test-mode       # a tiny model, seconds
"""

import os
import platform
import sys
import time
from pathlib import Path

import torch
from script_helpers import (ScriptArgumentParser, add_device_argument, positive_int,
                            synchronize)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the package, uninstalled

from llms_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel, generate_text_simple  # noqa: E402
from llms_from_scratch.kv_cache import generate as kv_generate  # noqa: E402
from llms_from_scratch.kv_cache import gpt2 as kv_gpt2  # noqa: E402
from llms_from_scratch.kv_cache_batched import generate as batched_generate  # noqa: E402
from llms_from_scratch.kv_cache_batched import gpt2 as batched_gpt2  # noqa: E402

# Copied from appendix-E/01_main-chapter-code/lora_benchmark.py::BOOK_MODEL
BOOK_MODEL = {**GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True}
TINY_BENCH_MODEL = {**BOOK_MODEL, "vocab_size": 257, "emb_dim": 32, "n_heads": 2, "n_layers": 2}


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


# Copied from ch05/03_bonus_pretraining_on_gutenberg/bench_gutenberg.py::load_average
def load_average():
    """The load average, where the system reports one (not on Windows)."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return f"load average {', '.join(f'{load:.1f}' for load in os.getloadavg())}"


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it."""
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=positive_int, default=8,
                        help="how many prompts (of lengths spread from 4 to 48 tokens)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=32,
                        help="tokens generated for each prompt")
    parser.add_argument("--seed", type=int, default=123, help="seed for weights and prompts")
    parser.add_argument("--test-mode", action="store_true",
                        help="a tiny model and short prompts, to check the script quickly")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for PyTorch (default: PyTorch's choice); on a "
                             "busy machine 1 thread can be many times faster")
    add_device_argument(parser)
    settings = vars(parser.parse_args(argv))
    config = TINY_BENCH_MODEL if settings["test_mode"] else BOOK_MODEL
    max_new_tokens = settings["max_new_tokens"]
    if 48 + max_new_tokens > config["context_length"]:
        parser.error(f"argument --max-new-tokens: 48 prompt tokens + {max_new_tokens} "
                     f"exceed the context of {config['context_length']}")
    return settings


def make_prompts(count, vocab_size, generator):
    lengths = torch.linspace(4, 48, count).round().long().tolist()
    return [torch.randint(0, vocab_size, (n,), generator=generator) for n in lengths]


def timed(device, work):
    synchronize(device)
    start = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - start


def time_generation_methods(config, num_prompts, max_new_tokens, seed, device):
    """[(method, seconds, new ids per prompt)] for the three ways of generating."""
    torch.manual_seed(seed)
    chapter = GPTModel(config).to(device).eval()
    cached = kv_gpt2.GPTModel(config).to(device).eval()
    batched = batched_gpt2.GPTModel(config).to(device).eval()
    cached.load_state_dict(chapter.state_dict())
    batched.load_state_dict(chapter.state_dict())
    prompts = [p.to(device) for p in make_prompts(num_prompts, config["vocab_size"],
                                                  torch.Generator().manual_seed(seed))]

    def one_by_one(generate, model, **kwargs):
        return [generate(model, p[None], max_new_tokens, **kwargs)[0, len(p):].tolist()
                for p in prompts]

    def all_at_once():
        idx, lengths = batched_generate.left_pad([p.cpu() for p in prompts])
        out = batched_generate.generate_text_simple(batched, idx.to(device), max_new_tokens,
                                                    prompt_lengths=lengths)
        return out[:, idx.shape[1]:].tolist()

    one_by_one(kv_generate.generate_text_simple, cached)  # warm-up: allocations, kernels
    results = []
    with torch.no_grad():
        for method, work in [
            ("chapter 4, no cache, one by one",
             lambda: one_by_one(generate_text_simple, chapter,
                                context_size=config["context_length"])),
            ("KV cache, one by one", lambda: one_by_one(kv_generate.generate_text_simple,
                                                        cached)),
            (f"KV cache, batched ({num_prompts} prompts at once)", all_at_once),
        ]:
            ids, seconds = timed(device, work)
            results.append((method, seconds, ids))
    return results


def main(settings):
    """Time the three ways as `settings` (parse_args's dict) says; 0 if they agree, else 1."""
    device, num_prompts = settings["device"], settings["prompts"]
    max_new_tokens = settings["max_new_tokens"]
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    config = TINY_BENCH_MODEL if settings["test_mode"] else BOOK_MODEL
    size = "tiny test model" if settings["test_mode"] else "GPT-2 124M (random weights)"
    print(f"{size}; {num_prompts} prompts of 4-48 tokens, {max_new_tokens} new tokens each")
    print(f"torch {torch.__version__}, device {device}: {describe_machine(device)}")
    print(f"before: {load_average()}")
    results = time_generation_methods(config, num_prompts, max_new_tokens, settings["seed"],
                                      device)
    total = num_prompts * max_new_tokens
    for method, seconds, _ in results:
        print(f"{method:<40} {seconds:7.2f} s  {total / seconds:8.1f} tokens/s")
    same = all(ids == results[0][2] for _, _, ids in results)
    print(f"after: {load_average()}; all three give the same ids: {'yes' if same else 'NO'}")
    return 0 if same else 1


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_from_command_line())
