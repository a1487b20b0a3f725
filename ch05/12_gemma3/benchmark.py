"""Gemma 3 270M, ours with and without the KV cache, against Hugging Face's `generate`.

    python benchmark.py

Run benchmarks one at a time: two at once time each other. (On a shared Linux
machine, `flock /tmp/llms-bench.lock python ...` queues them.)

All four runs use the same random weights (a Gemma 3 270M-shaped Hugging Face
`Gemma3ForCausalLM`, no download, copied into our `Gemma3Model` with the notebooks'
`load_weights_into_gemma`) and greedily continue the same random prompt by
`--max-new-tokens` tokens, batch size 1:

1. ours without a cache: chapter 4's `generate_text_simple` (the whole sequence
   through the model at every step);
2. ours with the KV cache: `generate_text_basic_stream` (standalone_gemma3.py);
3. Hugging Face's `generate(do_sample=False)` with its cache (sliding-window
   layers keep only the last `sliding_window` keys);
4. the same without its cache (`use_cache=False`).

Each is warmed up, then timed `--repeats` times; the fastest run counts (the one
least disturbed by other work on the machine). Hugging Face's runs come first,
then its weights are copied into ours and its model is freed, so that only one
copy of the weights is in memory at a time. Peak memory is what a generation
needs on top of the weights already in memory: on a GPU the peak of PyTorch's
allocator, on a CPU the peak of the process's resident memory (sampled every
millisecond on Linux).
"""

import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int, synchronize
from standalone_gemma3 import (
    GEMMA3_CONFIG_270M,
    Gemma3Model,
    generate_text_basic_stream,
    load_weights_into_gemma,
)

BENCH_CONFIGS = {"270m": GEMMA3_CONFIG_270M,
           # Two thin layers and a short window: for quick checks of the script itself.
           "tiny": {**GEMMA3_CONFIG_270M, "vocab_size": 512, "emb_dim": 64, "n_heads": 4,
                    "n_layers": 2, "hidden_dim": 128, "head_dim": 16, "sliding_window": 4,
                    "query_pre_attn_scalar": 16, "context_length": 1024,
                    "layer_types": ["sliding_attention", "full_attention"]}}
# Copied from ch05/07_gpt_to_llama/benchmark.py::DTYPES
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (checked)."""
    return parse_generation_args(argv, __doc__.splitlines()[0], BENCH_CONFIGS, dtype="float32")


def random_hf_gemma3(cfg, dtype, device, seed):
    """A Gemma3ForCausalLM with random weights, shaped like our configuration `cfg`."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"],
        intermediate_size=cfg["hidden_dim"], num_hidden_layers=cfg["n_layers"],
        num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv_groups"],
        head_dim=cfg["head_dim"], max_position_embeddings=cfg["context_length"],
        sliding_window=cfg["sliding_window"], layer_types=list(cfg["layer_types"]),
        query_pre_attn_scalar=cfg["query_pre_attn_scalar"], tie_word_embeddings=True,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": cfg["rope_local_base"]},
            "full_attention": {"rope_type": "default", "rope_theta": cfg["rope_base"]},
        },
        pad_token_id=0, bos_token_id=2, eos_token_id=None,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        return Gemma3ForCausalLM._from_config(config, dtype=dtype).eval()


# Copied from ch04/01_main-chapter-code/ch04.ipynb::generate_text_simple
def generate_text_simple(model, idx, max_new_tokens, context_size):
    """Greedily append `max_new_tokens` token ids to the batch `idx`.

    At each step the model sees at most the last `context_size` tokens (the
    longest input it supports) and we keep the most likely next token.
    """
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        next_token_logits = logits[:, -1, :]
        idx_next = torch.argmax(next_token_logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def measure_hugging_face(cfg, dtype, prompt, max_new_tokens, repeats, device, seed):
    """Hugging Face's runs with and without its cache; then our model with its weights.

    The Hugging Face model is freed when this returns: one copy of the weights at a time.
    """
    hf_model = random_hf_gemma3(cfg, dtype, device, seed)
    results = time_generations({
        "Hugging Face: Gemma3ForCausalLM.generate": lambda n: hf_generate(hf_model, prompt, n),
        "Hugging Face: generate(use_cache=False)":
            lambda n: hf_generate(hf_model, prompt, n, use_cache=False),
    }, max_new_tokens, repeats, device)
    with torch.device(device):
        ours = Gemma3Model({**cfg, "dtype": dtype}).eval()
    # Without "lm_head.weight", as on the hub: the loader ties our head to the embedding.
    params = {name: tensor for name, tensor in hf_model.state_dict().items()
              if name != "lm_head.weight"}
    load_weights_into_gemma(ours, cfg, params)
    return results, ours


def measure_ours(ours, prompt, max_new_tokens, repeats, device):
    """Our model without a cache (chapter 4's loop) and with the KV cache."""
    def with_cache(num_tokens):
        new = list(generate_text_basic_stream(ours, prompt, num_tokens))
        return torch.cat([prompt, *new], dim=1)

    return time_generations({
        "ours: Gemma3Model, no cache (generate_text_simple)":
            lambda n: generate_text_simple(ours, prompt, n, ours.cfg["context_length"]),
        "ours: Gemma3Model + KV cache (generate_text_basic_stream)": with_cache,
    }, max_new_tokens, repeats, device)


# Copied from ch05/07_gpt_to_llama/benchmark.py::parse_generation_args
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


# Copied from ch05/07_gpt_to_llama/benchmark.py::random_prompt
def random_prompt(vocab_size, length, seed, device):
    """A batch of one prompt of `length` random token ids (the same for every run of `seed`)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (1, length), generator=generator).to(device)


# Copied from ch05/07_gpt_to_llama/benchmark.py::hf_generate
def hf_generate(hf_model, prompt, num_tokens, use_cache=True):
    """Hugging Face's greedy `generate`: `prompt` and exactly `num_tokens` new token ids."""
    with torch.no_grad():
        return hf_model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                 max_new_tokens=num_tokens, min_new_tokens=num_tokens,
                                 do_sample=False, use_cache=use_cache, pad_token_id=0)


# Copied from ch05/07_gpt_to_llama/benchmark.py::resident_bytes
def resident_bytes():
    """This process's resident memory (Linux), or None where /proc is missing."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return None
    return int(statm.read_text().split()[1]) * 4096


# Copied from ch05/07_gpt_to_llama/benchmark.py::run_measured
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


# Copied from ch05/07_gpt_to_llama/benchmark.py::time_generations
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


# Copied from ch05/07_gpt_to_llama/benchmark.py::format_bytes
def format_bytes(num_bytes):
    return "n/a" if num_bytes is None else f"{num_bytes / 1024**2:,.0f} MiB"


# Copied from ch05/07_gpt_to_llama/benchmark.py::cpu_name
def cpu_name():
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# Copied from ch05/07_gpt_to_llama/benchmark.py::print_setup
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


# Copied from ch05/07_gpt_to_llama/benchmark.py::print_results_table
def print_results_table(results, max_new_tokens):
    """`results` (name -> (seconds, peak bytes, ids)) as a Markdown table."""
    print("| implementation | seconds | tokens/s | peak memory during generation |")
    print("|---|---:|---:|---:|")
    for name, (seconds, peak, _) in results.items():
        # Two decimals for real runs; three significant digits for a tiny model's milliseconds.
        shown = f"{seconds:.2f}" if seconds >= 1 else f"{seconds:.3g}"
        print(f"| {name} | {shown} | {max_new_tokens / seconds:.1f} | {format_bytes(peak)} |")


def report_results(results, settings, weight_bytes, load_before):
    """The table of `results` and how the runs compare; `settings` as parse_args returns."""
    print_setup(settings, "Gemma 3", weight_bytes, load_before, weights_note=", head tied")
    print_results_table(results, settings["max_new_tokens"])
    ours_s = results["ours: Gemma3Model + KV cache (generate_text_basic_stream)"][0]
    hf_s = results["Hugging Face: Gemma3ForCausalLM.generate"][0]
    print(f"\nspeed with cache relative to Hugging Face (> 1: ours faster): {hf_s / ours_s:.2f}x")
    ids = [result[2] for result in results.values()]
    same = all(torch.equal(ids[0], other) for other in ids[1:])
    if same:
        print("all four produced the same token ids")
    else:
        print(f"token ids differ between the runs (rounding differences in {settings['dtype']} "
              "between near-tied random logits)")
    return same


def main(argv=None):
    settings = parse_args(argv)
    device, seed = settings["device"], settings["seed"]
    max_new_tokens, repeats = settings["max_new_tokens"], settings["repeats"]
    load_before = os.getloadavg()
    cfg = BENCH_CONFIGS[settings["model"]]
    prompt = random_prompt(cfg["vocab_size"], settings["prompt_length"], seed, device)
    results, ours = measure_hugging_face(cfg, DTYPES[settings["dtype"]], prompt, max_new_tokens,
                                         repeats, device, seed)
    results.update(measure_ours(ours, prompt, max_new_tokens, repeats, device))
    weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
    report_results(results, settings, weight_bytes, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
