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
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(BENCH_CONFIGS), default="270m",
                        help="Gemma 3 configuration to build with random weights")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32",
                        help="weight type (float32 is the fast one on most CPUs)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=100,
                        help="tokens to generate per run")
    parser.add_argument("--prompt-length", type=positive_int, default=16,
                        help="random prompt tokens")
    parser.add_argument("--repeats", type=positive_int, default=2,
                        help="timed runs per implementation; fastest counts")
    parser.add_argument("--seed", type=int, default=123,
                        help="seed for the weights and the prompt")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    context_length = BENCH_CONFIGS[args.model]["context_length"]
    if args.prompt_length + args.max_new_tokens > context_length:
        parser.error(f"argument --max-new-tokens: the prompt and the new tokens exceed the "
                     f"context length {context_length}")
    return vars(args)


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


def time_generations(methods, max_new_tokens, repeats, device):
    """name -> (best seconds, largest peak, ids) for each generation method."""
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


def measure_hugging_face(cfg, dtype, prompt, max_new_tokens, repeats, device, seed):
    """Hugging Face's runs with and without its cache; then our model with its weights.

    The Hugging Face model is freed when this returns: one copy of the weights at a time.
    """
    hf_model = random_hf_gemma3(cfg, dtype, device, seed)

    def hf_generate(num_tokens, use_cache):
        with torch.no_grad():
            return hf_model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                     max_new_tokens=num_tokens, min_new_tokens=num_tokens,
                                     do_sample=False, use_cache=use_cache)

    results = time_generations({
        "Hugging Face: Gemma3ForCausalLM.generate": lambda n: hf_generate(n, True),
        "Hugging Face: generate(use_cache=False)": lambda n: hf_generate(n, False),
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


# Copied from ch05/07_gpt_to_llama/benchmark.py::format_bytes
def format_bytes(num_bytes):
    return "n/a" if num_bytes is None else f"{num_bytes / 1024**2:,.0f} MiB"


def report_results(results, settings, weight_bytes):
    """The table of `results` and how the runs compare; `settings` as parse_args returns."""
    import transformers

    device, dtype = settings["device"], settings["dtype"]
    max_new_tokens = settings["max_new_tokens"]
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"device: {device}, CPU threads: {torch.get_num_threads()}")
    if device.type == "cpu":
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"load average (1, 5, 15 min) at the end: {load}")
    print(f"Gemma 3 {settings['model']}-shaped model, random {dtype} weights "
          f"({weight_bytes / 1024**3:.2f} GiB, head tied), prompt {settings['prompt_length']} "
          f"random tokens, {max_new_tokens} new tokens (greedy), batch size 1, "
          f"best of {settings['repeats']}\n")
    print("| implementation | seconds | tokens/s | peak memory during generation |")
    print("|---|---:|---:|---:|")
    for name, (seconds, peak, _) in results.items():
        print(f"| {name} | {seconds:.2f} | {max_new_tokens / seconds:.1f} | "
              f"{format_bytes(peak)} |")
    ours_s = results["ours: Gemma3Model + KV cache (generate_text_basic_stream)"][0]
    hf_s = results["Hugging Face: Gemma3ForCausalLM.generate"][0]
    print(f"\nspeed with cache relative to Hugging Face (> 1: ours faster): {hf_s / ours_s:.2f}x")
    ids = [result[2] for result in results.values()]
    same = all(torch.equal(ids[0], other) for other in ids[1:])
    if same:
        print("all four produced the same token ids")
    else:
        print(f"token ids differ between the runs (rounding differences in {dtype} "
              "between near-tied random logits)")
    return same


def main(argv=None):
    settings = parse_args(argv)
    device, seed = settings["device"], settings["seed"]
    max_new_tokens, repeats = settings["max_new_tokens"], settings["repeats"]
    cfg = BENCH_CONFIGS[settings["model"]]
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, cfg["vocab_size"], (1, settings["prompt_length"]),
                           generator=generator).to(device)
    results, ours = measure_hugging_face(cfg, DTYPES[settings["dtype"]], prompt, max_new_tokens,
                                         repeats, device, seed)
    results.update(measure_ours(ours, prompt, max_new_tokens, repeats, device))
    weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
    report_results(results, settings, weight_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
