"""All five attention variants side by side: cache bytes and speed at one long context.

    python compare_kv_cache.py            # 4,096 tokens, a small GPT (emb 512, 8 heads, 4 layers)

The same small GPT (chapter 4's, with a KV cache) runs with multi-head attention
(MHA), grouped-query attention (GQA), multi-head latent attention (MLA),
sliding-window attention (SWA) and the 3:1 Gated DeltaNet hybrid. Each reads a
random prompt of `context_length - new_tokens` tokens into its cache (in chunks
of `--prefill-chunk` tokens) and then generates `new_tokens` tokens greedily, so
its cache ends up covering exactly `context_length` tokens. We then measure the
bytes all cache tensors hold and compare them with the memory estimators of
folders 04-08 for that shape: they must be equal.

This is the one script of these folders that uses its sibling folders
(../04_gqa, ../05_mla, ../06_swa); run it from a checkout of the whole chapter.
"""

import importlib
import os
import platform
import sys
import time
from pathlib import Path

import torch
from gpt_with_kv_deltanet import GPTModel as DeltaNetGPTModel
from kv_gpt_skeleton import TORCH_DTYPES, kv_cache_bytes
from plot_memory_estimates_gated_deltanet import DTYPE_BYTES, calc_hybrid_bytes_total
from script_helpers import (ScriptArgumentParser, add_device_argument, positive_int,
                            synchronize)

CHAPTER = Path(__file__).resolve().parent.parent


def import_from(folder, module_name):
    """Import `module_name` from the sibling folder ../`folder`."""
    path = str(CHAPTER / folder)
    sys.path.insert(0, path)
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(path)


def swa_ratio(sliding_window_stride):
    """The estimator's --swa_ratio for the model's --sliding_window_stride."""
    if sliding_window_stride == 0:
        return "0:1"
    if sliding_window_stride < 0:
        return "1:0"
    return f"{sliding_window_stride}:1"


def variants(shape):
    """[(name, model class, extra config, what its cache holds, predicted bytes)]."""
    mha = import_from("04_gqa", "gpt_with_kv_mha")
    gqa = import_from("04_gqa", "gpt_with_kv_gqa")
    gqa_estimator = import_from("04_gqa", "memory_estimator_gqa")
    mla = import_from("05_mla", "gpt_with_kv_mla")
    mla_estimator = import_from("05_mla", "memory_estimator_mla")
    swa = import_from("06_swa", "gpt_with_kv_swa")
    swa_estimator = import_from("06_swa", "memory_estimator_swa")
    s = shape
    tokens, emb, heads, layers, dtype = (s["context_length"], s["emb_dim"], s["n_heads"],
                                         s["n_layers"], s["dtype"])
    # The GQA estimator counts query heads per key/value head; the model counts key/value heads.
    gqa_bytes = gqa_estimator.gqa_estimates(tokens, emb, heads, layers, heads // s["n_kv_groups"],
                                       1, dtype)
    swa_bytes = swa_estimator.estimate_totals(tokens, s["sliding_window_size"], emb, heads, layers,
                                              1, 1, dtype, swa_ratio(s["sliding_window_stride"]))
    return [
        ("MHA", mha.GPTModel, {}, "keys + values, all heads",
         gqa_bytes["total_mha"]),
        (f"GQA ({s['n_kv_groups']} KV heads)", gqa.GPTModel, {"n_kv_groups": s["n_kv_groups"]},
         "keys + values, KV heads only", gqa_bytes["total_gqa"]),
        (f"MLA (latent {s['latent_dim']})", mla.GPTModel, {"latent_dim": s["latent_dim"]},
         "one latent per token",
         mla_estimator.calc_mla_bytes_total(1, tokens, layers, s["latent_dim"],
                                            DTYPE_BYTES[dtype])),
        (f"SWA (window {s['sliding_window_size']}, stride {s['sliding_window_stride']})",
         swa.GPTModel, {"sliding_window_size": s["sliding_window_size"],
                        "sliding_window_stride": s["sliding_window_stride"]},
         "last W tokens in SWA layers", swa_bytes["total_mixed_mha"]),
        (f"DeltaNet hybrid ({s['full_attention_interval'] - 1}:1)", DeltaNetGPTModel,
         {"full_attention_interval": s["full_attention_interval"]},
         "KV in attention layers, S elsewhere",
         calc_hybrid_bytes_total(1, tokens, emb, layers, DTYPE_BYTES[dtype], heads,
                                 s["full_attention_interval"])),
    ]


def measure_variant(model, prompt, new_tokens, prefill_chunk, device):
    """Fill the cache with `prompt`, generate `new_tokens`; (prefill s, decode s, cache bytes)."""
    model.reset_kv_cache()
    with torch.no_grad():
        synchronize(device)
        start = time.perf_counter()
        for i in range(0, prompt.shape[1], prefill_chunk):
            logits = model(prompt[:, i:i + prefill_chunk], use_cache=True)
        synchronize(device)
        prefill_s = time.perf_counter() - start
        next_id = logits[:, -1:].argmax(dim=-1)
        start = time.perf_counter()
        for _ in range(new_tokens):
            next_id = model(next_id, use_cache=True)[:, -1:].argmax(dim=-1)
        synchronize(device)
        decode_s = time.perf_counter() - start
    cache_bytes = kv_cache_bytes(model)
    model.reset_kv_cache()
    return prefill_s, decode_s, cache_bytes


def compare(shape, new_tokens, prefill_chunk, device):
    """Measure every variant; returns one dict per variant."""
    cfg = {"vocab_size": 50257, "context_length": shape["context_length"],
           "emb_dim": shape["emb_dim"], "n_heads": shape["n_heads"],
           "n_layers": shape["n_layers"], "drop_rate": 0.0, "qkv_bias": False}
    prompt = torch.randint(0, cfg["vocab_size"], (1, shape["context_length"] - new_tokens),
                           generator=torch.Generator().manual_seed(123)).to(device)
    rows = []
    for name, model_class, extra, holds, predicted in variants(shape):
        torch.manual_seed(123)
        model = model_class({**cfg, **extra}).to(device=device, dtype=TORCH_DTYPES[shape["dtype"]])
        prefill_s, decode_s, measured = measure_variant(model.eval(), prompt, new_tokens,
                                                        prefill_chunk, device)
        rows.append({"variant": name, "holds": holds, "measured": measured,
                     "predicted": predicted, "prefill_s": prefill_s,
                     "tokens_per_s": new_tokens / decode_s})
        del model
    return rows


def machine_line(device):
    """Where the numbers come from: CPU/GPU, torch, threads and the load."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = next((line.split(":", 1)[1].strip() for line in _cpuinfo()
                      if line.startswith("model name")), platform.processor() or "unknown CPU")
        where += f", {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{where}; torch {torch.__version__}; load average (1, 5, 15 min): {load}"


def _cpuinfo():
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (the device a torch.device)."""
    parser = ScriptArgumentParser(description="Compare KV-cache bytes and speed of MHA, GQA, "
                                              "MLA, SWA and the Gated DeltaNet hybrid.")
    parser.add_argument("--context-length", type=positive_int, default=4096,
                        help="tokens in the cache at the end (prompt + generated)")
    parser.add_argument("--new-tokens", type=positive_int, default=64,
                        help="tokens generated one by one (timed for tokens/s)")
    parser.add_argument("--prefill-chunk", type=positive_int, default=512,
                        help="prompt tokens fed per forward pass")
    parser.add_argument("--emb-dim", type=positive_int, default=512)
    parser.add_argument("--n-heads", type=positive_int, default=8)
    parser.add_argument("--n-layers", type=positive_int, default=4)
    parser.add_argument("--n-kv-groups", type=positive_int, default=2,
                        help="GQA key/value heads (as gpt_with_kv_gqa.py counts them)")
    parser.add_argument("--latent-dim", type=positive_int, default=64)
    parser.add_argument("--sliding-window-size", type=positive_int, default=512)
    parser.add_argument("--sliding-window-stride", type=int, default=3)
    parser.add_argument("--full-attention-interval", type=positive_int, default=4)
    parser.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="fp32")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    if args.emb_dim % args.n_heads != 0:
        parser.error(f"argument --n-heads: {args.n_heads} heads do not divide "
                     f"--emb-dim {args.emb_dim} into equal parts")
    if args.n_heads % args.n_kv_groups != 0:
        parser.error(f"argument --n-kv-groups: {args.n_kv_groups} does not divide "
                     f"--n-heads {args.n_heads}")
    if args.new_tokens >= args.context_length:
        parser.error(f"argument --new-tokens: must be less than --context-length "
                     f"{args.context_length}, so that there is a prompt")
    return vars(args)


def main(settings):
    """Measure every variant as `settings` (parse_args's dict) says; print and return the rows."""
    device, new_tokens = settings["device"], settings["new_tokens"]
    shape = {key: settings[key] for key in (
        "context_length", "emb_dim", "n_heads", "n_layers", "n_kv_groups", "latent_dim",
        "sliding_window_size", "sliding_window_stride", "full_attention_interval", "dtype")}
    print(f"Machine: {machine_line(device)}")
    print(f"Model: emb_dim {shape['emb_dim']}, {shape['n_heads']} heads, "
          f"{shape['n_layers']} layers, {shape['dtype']}; "
          f"cache at {shape['context_length']:,} tokens "
          f"({shape['context_length'] - new_tokens:,} prompt + {new_tokens} generated)")
    rows = compare(shape, new_tokens, settings["prefill_chunk"], device)
    print("\n| variant | the cache holds | measured cache bytes | estimator's bytes | equal "
          "| prefill (s) | decode tokens/s |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['variant']} | {r['holds']} | {r['measured']:,} | {r['predicted']:,} | "
              f"{'yes' if r['measured'] == r['predicted'] else 'NO'} | {r['prefill_s']:.2f} | "
              f"{r['tokens_per_s']:.1f} |")
    print(f"\nLoad average after the run: {machine_line(device).rsplit(': ', 1)[-1]}")
    return rows


if __name__ == "__main__":
    main(parse_args())
