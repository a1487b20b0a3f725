"""Our Llama 3.2 with its KV cache against Hugging Face's `generate`, side by side.

    python benchmark.py

Run benchmarks one at a time: two at once time each other. (On a shared Linux
machine, `flock /tmp/llms-bench.lock python ...` queues them.)

Both implementations get the same random weights (a Llama 3.2 1B-shaped
Hugging Face `LlamaForCausalLM`, no download, whose tensors our `Llama3Model`
uses under our parameter names) and greedily continue the same random
prompt by `--max-new-tokens` tokens, batch size 1:

1. ours: `generate_with_cache` with `Llama3Model` (standalone_llama32.py);
2. Hugging Face: `LlamaForCausalLM.generate(do_sample=False)` with its default
   (scaled-dot-product) attention and its own KV cache.

Each is warmed up, then timed `--repeats` times, interleaved; the fastest run
counts (the one least disturbed by other work on the machine). Peak memory is
what a generation needs on top of the weights already in memory: on a GPU the
peak of PyTorch's allocator, on a CPU the peak of the process's resident memory
(sampled every millisecond on Linux). The report names the CPU and the load
average before and after, since a shared machine slows every row.

The helpers from `parse_generation_args` to `print_results_table` are shared
with the Qwen3 and Gemma 3 benchmarks (ch05/11_qwen3, ch05/12_gemma3), which
keep checked copies of them.
"""

import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int, synchronize
from standalone_llama32 import (
    LLAMA32_CONFIG_1B,
    LLAMA32_CONFIG_3B,
    Llama3Model,
    generate_with_cache,
    hf_to_our_name,
    precompute_rope_params,
)

CONFIGS = {"1B": LLAMA32_CONFIG_1B, "3B": LLAMA32_CONFIG_3B,
           # Two thin layers: for quick checks of the script itself.
           "tiny": {**LLAMA32_CONFIG_1B, "vocab_size": 512, "emb_dim": 64, "n_heads": 4,
                    "n_layers": 2, "hidden_dim": 128, "n_kv_groups": 2, "context_length": 1024}}
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (checked)."""
    return parse_generation_args(argv, __doc__.splitlines()[0], CONFIGS, repeats=3)


def hf_config(cfg):
    """The Hugging Face LlamaConfig of our configuration dict (tied head, RoPE scaling)."""
    from transformers import LlamaConfig

    freq = cfg["rope_freq"]
    return LlamaConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"],
        intermediate_size=cfg["hidden_dim"], num_hidden_layers=cfg["n_layers"],
        num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv_groups"],
        max_position_embeddings=cfg["context_length"], rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, pad_token_id=None,
        rope_parameters={"rope_type": "llama3", "rope_theta": cfg["rope_base"],
                         "factor": freq["factor"], "low_freq_factor": freq["low_freq_factor"],
                         "high_freq_factor": freq["high_freq_factor"],
                         "original_max_position_embeddings": freq["original_context_length"]},
    )


def build_shared_models(cfg, dtype, device, seed):
    """A random Hugging Face Llama 3.2, and our Llama3Model sharing its weight tensors.

    Sharing keeps one copy of the weights in memory (2.3 GiB for 1B in bfloat16)
    instead of two; both implementations read the same memory. The tests check
    the notebooks' loader, which copies, on the same conversion.
    """
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        hf_model = LlamaForCausalLM._from_config(hf_config(cfg), dtype=dtype).eval()
    our_cfg = {**cfg, "dtype": dtype}
    with torch.device("meta"):  # shapes only: the tensors come from hf_model below
        ours = Llama3Model(our_cfg)
    shared = {hf_to_our_name(name): tensor for name, tensor in hf_model.state_dict().items()}
    shared.setdefault("out_head.weight", shared["tok_emb.weight"])  # Llama 3.2's tied head
    ours.load_state_dict(shared, assign=True)
    ours.out_head.weight = ours.tok_emb.weight
    head_dim = cfg["emb_dim"] // cfg["n_heads"]
    cos, sin = precompute_rope_params(head_dim, cfg["rope_base"], cfg["context_length"],
                                      cfg["rope_freq"])
    ours.cos, ours.sin = cos.to(device), sin.to(device)  # the RoPE tables, not in state dicts
    return ours.eval(), hf_model


def benchmark(ours, hf_model, prompt, max_new_tokens, repeats, device):
    """name -> (best seconds, largest peak, ids) for both implementations."""
    return time_generations({
        "ours: Llama3Model + generate_with_cache":
            lambda n: generate_with_cache(ours, prompt, max_new_tokens=n),
        "Hugging Face: LlamaForCausalLM.generate": lambda n: hf_generate(hf_model, prompt, n),
    }, max_new_tokens, repeats, device)


def parse_generation_args(argv, description, configs, dtype="bfloat16", repeats=2):
    """A generation benchmark's command line as a dict of plain values (checked).

    `configs` maps the `--model` choices to configuration dicts (the first is the
    default); `dtype` and `repeats` are the script's defaults for those flags.
    """
    parser = ScriptArgumentParser(description=description)
    parser.add_argument("--model", choices=list(configs), default=next(iter(configs)),
                        help="model shape to build with random weights")
    parser.add_argument("--dtype", choices=list(DTYPES), default=dtype,
                        help="weight type (float32 is faster on CPUs without bfloat16 arithmetic)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=100,
                        help="tokens to generate per run")
    parser.add_argument("--prompt-length", type=positive_int, default=16,
                        help="random prompt tokens")
    parser.add_argument("--repeats", type=positive_int, default=repeats,
                        help="timed runs per implementation; fastest counts")
    parser.add_argument("--seed", type=int, default=123,
                        help="seed for the weights and the prompt")
    add_device_argument(parser)
    settings = vars(parser.parse_args(argv))
    context = configs[settings["model"]]["context_length"]
    if settings["prompt_length"] + settings["max_new_tokens"] > context:
        parser.error(f"argument --max-new-tokens: the prompt and the new tokens "
                     f"({settings['prompt_length']} + {settings['max_new_tokens']}) exceed "
                     f"the context length of {context}")
    return settings


def random_prompt(vocab_size, length, seed, device):
    """A batch of one prompt of `length` random token ids (the same for every run of `seed`)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (1, length), generator=generator).to(device)


def hf_generate(hf_model, prompt, num_tokens, use_cache=True):
    """Hugging Face's greedy `generate`: `prompt` and exactly `num_tokens` new token ids."""
    with torch.no_grad():
        return hf_model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                 max_new_tokens=num_tokens, min_new_tokens=num_tokens,
                                 do_sample=False, use_cache=use_cache, pad_token_id=0)


def resident_bytes():
    """This process's resident memory (Linux), or None where /proc is missing."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return None
    return int(statm.read_text().split()[1]) * 4096


def run_measured(generate, device):
    """(seconds, peak bytes above the memory in use before, output ids) of one call."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    peak, stop = [resident_bytes()], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], resident_bytes())
            time.sleep(0.001)

    sampler = None
    if device.type == "cpu" and peak[0] is not None:
        before = peak[0]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    start = time.perf_counter()
    ids = generate()
    synchronize(device)
    seconds = time.perf_counter() - start
    stop.set()
    if sampler is not None:
        sampler.join()
        extra = peak[0] - before
    elif device.type == "cuda":
        extra = torch.cuda.max_memory_allocated(device) - before
    else:
        extra = None
    return seconds, extra, ids


def time_generations(methods, max_new_tokens, repeats, device):
    """name -> (best seconds, largest peak, ids) for each generation method.

    `methods` maps a name to a function of the number of new tokens. All are
    warmed up first, then timed in turn `repeats` times (interleaved, so a busy
    moment on the machine slows one round of each rather than one method).
    """
    for generate in methods.values():
        generate(2)  # warm-up: the first calls pay for allocations and kernel selection
    results = {name: (float("inf"), 0, None) for name in methods}
    for _ in range(repeats):
        for name, generate in methods.items():
            seconds, extra, ids = run_measured(lambda g=generate: g(max_new_tokens), device)
            best, peak, _ = results[name]
            results[name] = (min(best, seconds),
                             None if extra is None else max(peak, extra), ids)
    return results


def format_bytes(num_bytes):
    return "n/a" if num_bytes is None else f"{num_bytes / 1024**2:,.0f} MiB"


def cpu_name():
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def print_setup(settings, family, weight_bytes, load_before, weights_note=""):
    """The report's header: software, machine and load, model and run settings.

    `settings` as `parse_generation_args` returns; `load_before` is
    `os.getloadavg()` from before the models were built.
    """
    import transformers

    device, dtype = settings["device"], settings["dtype"]
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"device: {device}{gpu}, CPU threads: {torch.get_num_threads()}")
    after = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    before = ", ".join(f"{value:.1f}" for value in load_before)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, load average (1, 5, 15 min) "
          f"at the end: {after} (before: {before})")
    print(f"{family} {settings['model']}-shaped model, random {dtype} weights "
          f"({weight_bytes / 1024**3:.2f} GiB{weights_note}), prompt {settings['prompt_length']} "
          f"random tokens, {settings['max_new_tokens']} new tokens (greedy), batch size 1, "
          f"best of {settings['repeats']}\n")


def print_results_table(results, max_new_tokens):
    """`results` (name -> (seconds, peak bytes, ids)) as a Markdown table."""
    print("| implementation | seconds | tokens/s | peak memory during generation |")
    print("|---|---:|---:|---:|")
    for name, (seconds, peak, _) in results.items():
        # Two decimals for real runs; three significant digits for a tiny model's milliseconds.
        shown = f"{seconds:.2f}" if seconds >= 1 else f"{seconds:.3g}"
        print(f"| {name} | {shown} | {max_new_tokens / seconds:.1f} | {format_bytes(peak)} |")


def print_report(results, settings, weight_bytes, load_before):
    """The table of `results` and how the two runs compare; `settings` as parse_args returns."""
    dtype = settings["dtype"]
    print_setup(settings, "Llama 3.2", weight_bytes, load_before)
    print_results_table(results, settings["max_new_tokens"])
    (ours_s, _, ours_ids), (hf_s, _, hf_ids) = results.values()
    print(f"\nspeed relative to Hugging Face (> 1: ours faster): {hf_s / ours_s:.2f}x")
    same = torch.equal(ours_ids, hf_ids)
    if same:
        print("both produced the same token ids")
    else:
        differs = (ours_ids[0] != hf_ids[0]).nonzero()
        print(f"token ids differ from position {differs[0].item() if len(differs) else '?'} "
              f"on (rounding differences in {dtype} between near-tied random logits)")
    return same


def main(argv=None):
    settings = parse_args(argv)
    device, seed = settings["device"], settings["seed"]
    load_before = os.getloadavg()
    cfg = CONFIGS[settings["model"]]
    ours, hf_model = build_shared_models(cfg, DTYPES[settings["dtype"]], device, seed)
    weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
    prompt = random_prompt(cfg["vocab_size"], settings["prompt_length"], seed, device)
    results = benchmark(ours, hf_model, prompt, settings["max_new_tokens"], settings["repeats"],
                        device)
    print_report(results, settings, weight_bytes, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
