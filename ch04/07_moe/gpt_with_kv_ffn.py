"""GPT with a KV cache and a dense SwiGLU feed-forward layer: the baseline for the MoE.

Modern LLMs (Llama, Qwen, DeepSeek) replace GPT-2's GELU feed-forward layer with
SwiGLU: two up-projections, one gating the other through SiLU, and a
down-projection. `gpt_with_kv_moe.py` splits this layer into experts. The
script times every feed-forward call.

    python gpt_with_kv_ffn.py --max_new_tokens 200 --hidden_dim 3072
"""

import time

import torch.nn as nn
import torch.nn.functional as F
from gpt_with_kv_mha import GPTModel as MHAGPTModel
from kv_gpt_skeleton import add_common_arguments, parse_common_arguments, run_generation
# The book's scripts each define these; `from gpt_with_kv_... import generate_text_simple_cached`
# works here too.
from kv_gpt_skeleton import generate_text_simple_cached, kv_cache_bytes  # noqa: F401
from script_helpers import ScriptArgumentParser, positive_int, synchronize


class FeedForward(nn.Module):
    """SwiGLU: fc3(silu(fc1(x)) * fc2(x)), hidden size `cfg["hidden_dim"]`, no biases."""

    def __init__(self, cfg):
        super().__init__()
        self.fc1 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False)
        self.fc2 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False)
        self.fc3 = nn.Linear(cfg["hidden_dim"], cfg["emb_dim"], bias=False)

    def forward(self, x):
        return self.fc3(F.silu(self.fc1(x)) * self.fc2(x))


class GPTModel(MHAGPTModel):
    """GPT-2 with a KV cache, multi-head attention and a SwiGLU feed-forward layer."""

    def make_feed_forward(self, cfg, layer_idx):
        return FeedForward(cfg)


def time_forward_calls(modules, device):
    """Record the milliseconds of every forward call of `modules`; returns the (growing) list."""
    times_ms, started = [], {}

    def before(module, inputs):
        synchronize(device)
        started[module] = time.perf_counter()

    def after(module, inputs, output):
        synchronize(device)
        times_ms.append(1000 * (time.perf_counter() - started.pop(module)))

    for module in modules:
        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)
    return times_ms


def run_timed(model_class, cfg_extra, settings, label):
    """`run_generation` with every block's feed-forward layer timed; returns the model."""
    built = {}

    def build(cfg):
        built["model"] = model = model_class(cfg)
        built["times"] = time_forward_calls([block.ff for block in model.trf_blocks],
                                            settings["device"])
        return model

    run_generation(build, cfg_extra, **settings)
    times = built["times"]
    print(f"Avg {label} time/call: {sum(times) / len(times):.3f} ms ({len(times)} calls)")
    return built["model"]


def parse_args(argv=None):
    """The command line as plain values: (the variant's config keys, run_generation's settings)."""
    parser = ScriptArgumentParser(description="Run GPT with a dense SwiGLU feed-forward layer.")
    add_common_arguments(parser)
    parser.add_argument("--hidden-dim", type=positive_int, default=768 * 4,
                        help="the feed-forward layer's hidden size")
    parser.add_argument("--no-kv-cache", action="store_true", help="generate without the cache")
    args, settings = parse_common_arguments(parser, argv)
    return {"hidden_dim": args.hidden_dim}, {**settings, "use_cache": not args.no_kv_cache}


def main(argv=None):
    extra_cfg, settings = parse_args(argv)
    run_timed(GPTModel, extra_cfg, settings, label="FFN")


if __name__ == "__main__":
    main()
