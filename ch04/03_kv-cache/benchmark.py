"""How much faster is generation with a KV cache? Measure it.

    python benchmark.py

Run benchmarks one at a time: two at once time each other. (On a shared Linux
machine, `flock /tmp/llms-bench.lock python ...` queues them.)

Five ways to greedily continue "Hello, I am" by 200 tokens with the same
random GPT-2 (124M) weights, batch size 1:

1. the chapter's `generate_text_simple` with `GPTModel` (no cache: every step
   runs the model over the whole sequence again);
2. our `generate_text_simple_cached` with `GPTModel` (one token per step), built
   from the chapter's LayerNorm, GELU and attention code;
3. the same with `GPTModel(cfg, fused_ops=True)`: PyTorch's fused
   layer_norm, gelu and scaled_dot_product_attention, as Hugging Face uses;
4. the same again after `store_weights_column_major`: every linear layer's
   weight stored column by column, the memory order that suits the CPU's
   matrix-vector kernel (Hugging Face's GPT-2 blocks store theirs that way);
5. Hugging Face's `GPT2LMHeadModel.generate(use_cache=True, do_sample=False)`.

Comparing 1 with 2 measures what the cache alone buys; 2 with 3 what the
fused operations add; 3 with 4 what the memory order of the weights adds.
The weights come from a randomly initialised Hugging Face model (no
download), converted into our models, so all five must
produce the same token ids; the script checks that. Each method is timed
`--repeats` times, interleaved, and the fastest run counts (the least
disturbed by other work on the machine).
"""

import time

import tiktoken
import torch
from downloads import cache_gpt2_tokenizer_files
from gpt_with_kv_cache import GPTModel, generate_text_simple_cached, store_weights_column_major
from previous_chapters import (
    GPT_CONFIG_124M,
    generate_text_simple,
)
from previous_chapters import GPTModel as ChapterGPTModel
from previous_chapters import (
    gpt_config_from_hf,
    gpt_model_from_hf,
)
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int, synchronize

HF_ROW = "Hugging Face generate (use_cache=True)"
HF_MISSING = ("Hugging Face generate: skipped, it needs the `transformers` package "
              "(pip install transformers)")


def parse_args(argv=None):
    """The command line as plain values: (the model's config, the run's settings)."""
    parser = ScriptArgumentParser(
        description="Tokens per second of greedy generation with and without a KV cache.",
    )
    parser.add_argument("--prompt", default="Hello, I am", help="text to continue")
    parser.add_argument("--max-new-tokens", type=positive_int, default=200,
                        help="tokens to generate per run")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed runs per method; the fastest counts")
    parser.add_argument("--seed", type=int, default=123, help="seed for the random weights")
    parser.add_argument("--emb-dim", type=positive_int, default=GPT_CONFIG_124M["emb_dim"])
    parser.add_argument("--n-layers", type=positive_int, default=GPT_CONFIG_124M["n_layers"])
    parser.add_argument("--n-heads", type=positive_int, default=GPT_CONFIG_124M["n_heads"])
    parser.add_argument("--context-length", type=positive_int,
                        default=GPT_CONFIG_124M["context_length"])
    add_device_argument(parser)
    args = parser.parse_args(argv)
    if not args.prompt:
        parser.error("argument --prompt: must not be empty: the model needs a token to continue")
    if args.emb_dim % args.n_heads != 0:
        parser.error(f"argument --n-heads: must divide --emb-dim {args.emb_dim}, "
                     f"got {args.n_heads}")
    config = {**GPT_CONFIG_124M, "context_length": args.context_length,
              "emb_dim": args.emb_dim, "n_layers": args.n_layers, "n_heads": args.n_heads,
              "drop_rate": 0.0, "qkv_bias": True}
    settings = {key: getattr(args, key)
                for key in ("prompt", "max_new_tokens", "repeats", "seed", "device")}
    return config, settings


def build_models(config, seed, device):
    """Random GPT-2 weights in each model; Hugging Face's model too when installed.

    With `transformers` the weights come from a random GPT2LMHeadModel (so its
    own generate can run on the same weights); without it, from the chapter's
    GPTModel, and the Hugging Face row is skipped. Returns the models in the
    order of `generation_methods`, None for the missing one.
    """
    torch.manual_seed(seed)
    hf_model = random_hf_model(config)
    if hf_model is None:
        print(HF_MISSING)
        plain_model = ChapterGPTModel(config)
    else:
        plain_model = gpt_model_from_hf(hf_model)
        config = gpt_config_from_hf(hf_model.config)
    models = [hf_model, plain_model]
    for fused_ops in (False, True):
        cached_model = GPTModel(config, fused_ops=fused_ops)
        cached_model.load_state_dict(plain_model.state_dict())
        models.append(cached_model)
    column_major_model = GPTModel(config, fused_ops=True)
    store_weights_column_major(column_major_model)
    column_major_model.load_state_dict(plain_model.state_dict())  # keeps the memory order
    models.append(column_major_model)
    return [None if model is None else model.to(device).eval() for model in models]


def random_hf_model(config):
    """A randomly initialised GPT2LMHeadModel of this shape, or None without transformers."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None
    hf_config = GPT2Config(
        vocab_size=config["vocab_size"],
        n_positions=config["context_length"],
        n_embd=config["emb_dim"],
        n_layer=config["n_layers"],
        n_head=config["n_heads"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(hf_config)


def generation_methods(hf_model, plain_model, cached_model, fused_model, column_major_model,
                       context_size):
    """name -> function(idx, max_new_tokens) returning the ids with the new tokens."""

    def hf_generate(idx, max_new_tokens):
        with torch.no_grad():
            return hf_model.generate(
                idx,
                attention_mask=torch.ones_like(idx),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                eos_token_id=None,  # random weights may pick GPT-2's end token; keep going
                pad_token_id=0,
            )

    methods = {
        "chapter generate_text_simple (no cache)":
            lambda idx, n: generate_text_simple(plain_model, idx, n, context_size),
        "ours generate_text_simple_cached (KV cache)":
            lambda idx, n: generate_text_simple_cached(cached_model, idx, n, context_size),
        "ours generate_text_simple_cached, fused ops":
            lambda idx, n: generate_text_simple_cached(fused_model, idx, n, context_size),
        "ours generate_text_simple_cached, fused ops, column-major weights":
            lambda idx, n: generate_text_simple_cached(column_major_model, idx, n, context_size),
    }
    if hf_model is not None:
        methods[HF_ROW] = hf_generate
    return methods


def time_methods(methods, idx, max_new_tokens, repeats, device):
    """Fastest seconds per method, and the ids each method produced."""
    for generate in methods.values():
        generate(idx, 2)  # warm-up: first calls pay for memory allocation and setup
    best = {name: float("inf") for name in methods}
    outputs = {}
    for _ in range(repeats):
        for name, generate in methods.items():
            synchronize(device)
            start = time.perf_counter()
            outputs[name] = generate(idx, max_new_tokens)
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best, outputs


def print_results(best, max_new_tokens):
    uncached, cached, fused, column_major = list(best.values())[:4]
    print(f"\n| method | seconds for {max_new_tokens} tokens | tokens/s |")
    print("|---|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {max_new_tokens / seconds:.1f} |")
    print(f"\nKV cache speed-up over no cache:     {uncached / cached:.1f}x (target: >= 5x)")
    print(f"fused ops speed-up over chapter ops: {cached / fused:.2f}x")
    print(f"column-major weights speed-up over fused ops alone: {fused / column_major:.2f}x")
    if HF_ROW not in best:
        print(HF_MISSING)
        return
    hf = best[HF_ROW]
    print(f"speed relative to Hugging Face generate (> 1 = ours faster): "
          f"chapter ops {hf / cached:.2f}x, fused ops {hf / fused:.2f}x, "
          f"fused ops with column-major weights {hf / column_major:.2f}x (target: >= 1x)")


def main(argv=None):
    config, settings = parse_args(argv)
    device, prompt, repeats = settings["device"], settings["prompt"], settings["repeats"]
    max_new_tokens = settings["max_new_tokens"]
    models = build_models(config, settings["seed"], device)

    cache_gpt2_tokenizer_files()  # lets tiktoken load GPT-2's BPE with no network
    tokenizer = tiktoken.get_encoding("gpt2")
    idx = torch.tensor([tokenizer.encode(prompt)], device=device)

    print(f"torch {torch.__version__}, device: {device}, threads: {torch.get_num_threads()}")
    print(f"model: emb_dim={config['emb_dim']}, n_layers={config['n_layers']}, "
          f"n_heads={config['n_heads']}, random weights; prompt {prompt!r} "
          f"({idx.shape[1]} tokens), batch size 1, best of {repeats}")

    methods = generation_methods(*models, config["context_length"])
    best, outputs = time_methods(methods, idx, max_new_tokens, repeats, device)

    reference = next(iter(outputs.values()))
    identical = all(torch.equal(reference, out) for out in outputs.values())
    print(f"all {len(outputs)} methods produced the same {reference.shape[1]} token ids: "
          f"{identical}")
    print_results(best, max_new_tokens)
    if not identical:
        raise SystemExit("the methods disagree; the timings compare different work")


if __name__ == "__main__":
    main()
