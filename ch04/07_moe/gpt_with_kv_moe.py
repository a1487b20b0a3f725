"""GPT with a KV cache and a mixture-of-experts (MoE) feed-forward layer.

An MoE layer holds `num_experts` SwiGLU feed-forward networks ("experts") and a
router (`gate`) that sends each token to the `num_experts_per_tok` experts it
scores highest; their outputs are mixed with the softmax of those scores. The
model has num_experts times the feed-forward parameters, but each token uses
only num_experts_per_tok experts' worth of compute.

    python gpt_with_kv_moe.py --max_new_tokens 200 --hidden_dim 768 \
        --num_experts 8 --num_experts_per_tok 2

With `--num_experts 0` the block gets the dense SwiGLU layer of
`gpt_with_kv_ffn.py` (the book's script falls back to GPT-2's GELU layer there,
which makes the comparison with the SwiGLU experts unfair).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from gpt_with_kv_ffn import FeedForward, run_timed
from gpt_with_kv_mha import GPTModel as MHAGPTModel
from kv_gpt_skeleton import add_common_arguments, parse_common_arguments
# The book's scripts each define these; `from gpt_with_kv_... import generate_text_simple_cached`
# works here too.
from kv_gpt_skeleton import generate_text_simple_cached, kv_cache_bytes  # noqa: F401
from script_helpers import ScriptArgumentParser, non_negative_int, positive_int


class MoEFeedForward(nn.Module):
    """Top-k routed SwiGLU experts; counts how many tokens each expert receives.

    `tokens_per_expert` adds up the routing decisions of every forward call
    (reset with `reset_load()`): a router that favours few experts wastes the others.
    """

    def __init__(self, cfg):
        super().__init__()
        if not 1 <= cfg["num_experts_per_tok"] <= cfg["num_experts"]:
            raise ValueError(f"num_experts_per_tok ({cfg['num_experts_per_tok']}) must be "
                             f"between 1 and num_experts ({cfg['num_experts']})")
        self.num_experts_per_tok = cfg["num_experts_per_tok"]
        self.num_experts = cfg["num_experts"]
        self.emb_dim = cfg["emb_dim"]
        self.gate = nn.Linear(cfg["emb_dim"], cfg["num_experts"], bias=False)
        # Expert e is the SwiGLU layer fc3[e](silu(fc1[e](x)) * fc2[e](x)).
        self.fc1 = self._expert_layers(cfg["emb_dim"], cfg["hidden_dim"])
        self.fc2 = self._expert_layers(cfg["emb_dim"], cfg["hidden_dim"])
        self.fc3 = self._expert_layers(cfg["hidden_dim"], cfg["emb_dim"])
        self.register_buffer("tokens_per_expert", torch.zeros(self.num_experts, dtype=torch.long),
                             persistent=False)

    def _expert_layers(self, d_in, d_out):
        return nn.ModuleList(nn.Linear(d_in, d_out, bias=False) for _ in range(self.num_experts))

    def reset_load(self):
        self.tokens_per_expert.zero_()

    def forward(self, x):
        tokens = x.reshape(-1, self.emb_dim)  # routing is per token: flatten batch and time
        top_scores, top_experts = torch.topk(self.gate(tokens), self.num_experts_per_tok, dim=-1)
        weights = torch.softmax(top_scores, dim=-1)
        self.tokens_per_expert += torch.bincount(top_experts.flatten(), minlength=self.num_experts)
        out = torch.zeros_like(tokens)
        for expert in top_experts.unique().tolist():  # only experts that received tokens
            token_idx, slot = torch.where(top_experts == expert)
            chosen = tokens[token_idx]
            hidden = F.silu(self.fc1[expert](chosen)) * self.fc2[expert](chosen)
            out.index_add_(0, token_idx, self.fc3[expert](hidden) * weights[token_idx, slot, None])
        return out.view_as(x)


class GPTModel(MHAGPTModel):
    """GPT-2 with a KV cache, multi-head attention and MoE feed-forward layers.

    `cfg["num_experts"] == 0` gives the dense SwiGLU layer (`hidden_dim` wide).
    """

    def make_feed_forward(self, cfg, layer_idx):
        return MoEFeedForward(cfg) if cfg["num_experts"] > 0 else FeedForward(cfg)


def expert_load(model):
    """Tokens routed to each expert, summed over all MoE layers (None without MoE)."""
    loads = [block.ff.tokens_per_expert for block in model.trf_blocks
             if isinstance(block.ff, MoEFeedForward)]
    return torch.stack(loads).sum(dim=0).tolist() if loads else None


def parse_args(argv=None):
    """The command line as plain values: (the variant's config keys, run_generation's settings)."""
    parser = ScriptArgumentParser(description="Run GPT with mixture-of-experts layers.")
    add_common_arguments(parser)
    parser.add_argument("--hidden-dim", type=positive_int, default=768 * 4,
                        help="each expert's hidden size (the dense layer's with 0 experts)")
    parser.add_argument("--no-kv-cache", action="store_true", help="generate without the cache")
    parser.add_argument("--num-experts", type=non_negative_int, default=0,
                        help="experts per MoE layer; 0: a dense SwiGLU layer")
    parser.add_argument("--num-experts-per-tok", type=positive_int, default=2,
                        help="experts each token is routed to (top-k)")
    args, settings = parse_common_arguments(parser, argv)
    if 0 < args.num_experts < args.num_experts_per_tok:
        parser.error(f"argument --num-experts-per-tok: {args.num_experts_per_tok} is more "
                     f"than --num-experts {args.num_experts}")
    cfg_extra = {"hidden_dim": args.hidden_dim, "num_experts": args.num_experts,
                 "num_experts_per_tok": args.num_experts_per_tok if args.num_experts else 0}
    return cfg_extra, {**settings, "use_cache": not args.no_kv_cache}


def main(argv=None):
    cfg_extra, settings = parse_args(argv)
    model = run_timed(GPTModel, cfg_extra, settings, label="MoE FF")
    load = expert_load(model)
    if load is not None:
        total = sum(load)
        print("Tokens per expert (all layers): "
              + ", ".join(f"{e}: {n} ({100 * n / total:.1f}%)" for e, n in enumerate(load)))


if __name__ == "__main__":
    main()
