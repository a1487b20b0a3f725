"""Qwen3 generation speed and memory: without and with the KV cache, and Hugging Face's.

    python benchmark.py                      # Qwen3 0.6B shape, bfloat16, 100 new tokens
    python benchmark.py --help               # other sizes, float32, lengths, --device

Run benchmarks one at a time: two at once time each other. (On a shared Linux
machine, `flock /tmp/llms-bench.lock python ...` queues them.)

All three get the same random weights, without a download: a Qwen3-shaped
Hugging Face `Qwen3ForCausalLM`, whose tensors our models use under our
parameter names (no second copy in memory). Each greedily continues the same
random prompt by `--max-new-tokens` tokens, batch size 1:

1. ours, no cache: `generate_text_basic_stream` of qwen3.py, which runs the
   whole sequence through the model for every new token;
2. ours, KV cache: `generate_text_basic_stream` of qwen3_kvcache.py;
3. Hugging Face: `Qwen3ForCausalLM.generate(do_sample=False)` (its default
   scaled-dot-product attention and its own KV cache).

Each is warmed up, then timed `--repeats` times, interleaved; the fastest run
counts (the one least disturbed by other work on the machine). Peak memory is
what a generation needs on top of the weights already in memory: on a GPU the
peak of PyTorch's allocator, on a CPU the peak of the process's resident memory
(sampled every millisecond on Linux). The report names the CPU and the load
average, since a shared machine slows every row.
"""

import os
import platform
import sys
import threading
import time
from pathlib import Path

import qwen3
import qwen3_kvcache
import torch
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int, synchronize

BENCHMARK_CONFIGS = {"0.6B": qwen3.QWEN_CONFIG_06_B, "1.7B": qwen3.QWEN3_CONFIG_1_7B,
           # Two thin layers: for quick checks of the script itself.
           "tiny": {**qwen3.QWEN_CONFIG_06_B, "vocab_size": 512, "emb_dim": 64, "n_heads": 4,
                    "n_layers": 2, "hidden_dim": 128, "head_dim": 16, "n_kv_groups": 2,
                    "context_length": 1024}}
# Copied from ch05/07_gpt_to_llama/benchmark.py::DTYPES
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
# Hugging Face's parameter names -> ours (the loader's mapping, for sharing tensors).
HF_TO_OURS = {"model.embed_tokens.": "tok_emb.", "model.norm.weight": "final_norm.scale",
              "lm_head.": "out_head.", "model.layers.": "trf_blocks.",
              "self_attn.q_proj.": "att.W_query.", "self_attn.k_proj.": "att.W_key.",
              "self_attn.v_proj.": "att.W_value.", "self_attn.o_proj.": "att.out_proj.",
              "self_attn.q_norm.weight": "att.q_norm.scale",
              "self_attn.k_norm.weight": "att.k_norm.scale",
              "mlp.gate_proj.": "ff.fc1.", "mlp.up_proj.": "ff.fc2.", "mlp.down_proj.": "ff.fc3.",
              "input_layernorm.weight": "norm1.scale",
              "post_attention_layernorm.weight": "norm2.scale"}


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (checked)."""
    return parse_generation_args(argv, __doc__.splitlines()[0], BENCHMARK_CONFIGS)


def our_name(hf_name):
    for theirs, ours in HF_TO_OURS.items():
        hf_name = hf_name.replace(theirs, ours)
    return hf_name


def build_models_sharing_weights(cfg, dtype, device, seed):
    """A random Hugging Face Qwen3, and our two models sharing its weight tensors."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tied = cfg["emb_dim"] <= 2048  # the 0.6B and 1.7B releases tie the output head
    hf_cfg = Qwen3Config(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"],
        intermediate_size=cfg["hidden_dim"], num_hidden_layers=cfg["n_layers"],
        num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv_groups"],
        head_dim=cfg["head_dim"], max_position_embeddings=cfg["context_length"],
        rms_norm_eps=1e-6, tie_word_embeddings=tied, bos_token_id=None, eos_token_id=None,
        pad_token_id=None, rope_parameters={"rope_type": "default",
                                            "rope_theta": cfg["rope_base"]})
    torch.manual_seed(seed)
    with torch.device(device):
        hf_model = Qwen3ForCausalLM._from_config(hf_cfg, dtype=dtype).eval()
    shared = {our_name(name): tensor for name, tensor in hf_model.state_dict().items()}
    shared.setdefault("out_head.weight", shared["tok_emb.weight"])
    ours = []
    for module in (qwen3, qwen3_kvcache):
        with torch.device("meta"):  # shapes only: the tensors come from hf_model
            model = module.Qwen3Model({**cfg, "dtype": dtype})
        model.load_state_dict(shared, assign=True)
        cos, sin = qwen3.compute_rope_params(cfg["head_dim"], cfg["rope_base"],
                                             cfg["context_length"])
        model.cos, model.sin = cos.to(device), sin.to(device)  # not in state dicts
        ours.append(model.eval())
    return (*ours, hf_model)


def compare_generation(plain, cached, hf_model, prompt, max_new_tokens, repeats, device):
    """name -> (best seconds, largest peak, ids) for the three implementations."""
    def ours(module, model):
        return lambda n: torch.cat(list(module.generate_text_basic_stream(model, prompt, n)),
                                   dim=1)

    return time_generations({
        "ours, no cache (qwen3.py)": ours(qwen3, plain),
        "ours, KV cache (qwen3_kvcache.py)": ours(qwen3_kvcache, cached),
        # Only the new tokens, as generate_text_basic_stream returns them.
        "Hugging Face: Qwen3ForCausalLM.generate":
            lambda n: hf_generate(hf_model, prompt, n)[:, prompt.shape[1]:],
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


def print_comparison(results, settings, weight_bytes, load_before):
    """The table of `results` and how the runs compare; `settings` as parse_args returns."""
    dtype = settings["dtype"]
    print_setup(settings, "Qwen3", weight_bytes, load_before)
    print_results_table(results, settings["max_new_tokens"])
    (plain_s, _, plain_ids), (kv_s, _, kv_ids), (hf_s, _, hf_ids) = results.values()
    print(f"\nKV cache against no cache: {plain_s / kv_s:.2f}x faster")
    print(f"KV cache against Hugging Face (> 1: ours faster): {hf_s / kv_s:.2f}x")
    for label, ids in (("no cache", plain_ids), ("Hugging Face", hf_ids)):
        if torch.equal(ids, kv_ids):
            print(f"KV cache and {label}: the same token ids")
        else:
            differs = (ids[0] != kv_ids[0]).nonzero()[0].item()
            print(f"KV cache and {label}: token ids differ from position {differs} on "
                  f"(rounding differences in {dtype} between near-tied random logits)")


def main(argv=None):
    settings = parse_args(argv)
    device, seed = settings["device"], settings["seed"]
    load_before = os.getloadavg()
    cfg = BENCHMARK_CONFIGS[settings["model"]]
    plain, cached, hf_model = build_models_sharing_weights(cfg, DTYPES[settings["dtype"]], device,
                                                           seed)
    weight_bytes = sum(p.numel() * p.element_size() for p in hf_model.parameters())
    prompt = random_prompt(cfg["vocab_size"], settings["prompt_length"], seed, device)
    results = compare_generation(plain, cached, hf_model, prompt, settings["max_new_tokens"],
                                 settings["repeats"], device)
    print_comparison(results, settings, weight_bytes, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
