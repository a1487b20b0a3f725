"""Parameters of a dense feed-forward layer vs a mixture-of-experts (MoE) layer.

    python memory_estimator_moe.py --emb_dim 7168 --hidden_dim 14336 --ffn_type swiglu \
        --num_experts 8 --top_k 2 --match_dense

A GELU layer has 2 weight matrices (up, down), a SwiGLU layer 3 (two up, one
down); biases are left out. The MoE layer adds a router of emb_dim x
num_experts. With `--match_dense` each expert gets the hidden size that makes
the MoE layer as large as the dense one, so the comparison is at equal total
parameters. Sizes in "GB" use the chosen dtype and 10^9 bytes.
"""

from script_helpers import ScriptArgumentParser, positive_int

# Copied from ch04/04_gqa/memory_estimator_gqa.py::DTYPE_BYTES
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
FFN_MATRICES = {"gelu": 2, "swiglu": 3}


# Copied from ch04/04_gqa/memory_estimator_gqa.py::convert_bytes
def convert_bytes(n):
    """Bytes as decimal gigabytes, e.g. '17.18 GB'."""
    return f"{n / 1000**3:,.2f} GB"


def get_num_param_matrices(ffn_type):
    """Weight matrices of one feed-forward layer: 2 for GELU, 3 for SwiGLU."""
    if ffn_type not in FFN_MATRICES:
        raise ValueError(f"ffn_type must be one of {sorted(FFN_MATRICES)}, got {ffn_type!r}")
    return FFN_MATRICES[ffn_type]


def calc_ffn_params(emb_dim, hidden_dim, ffn_type):
    """Parameters of one feed-forward layer (weights only)."""
    return get_num_param_matrices(ffn_type) * emb_dim * hidden_dim


def calc_router_params(emb_dim, num_experts):
    """The router is one emb_dim x num_experts matrix."""
    return emb_dim * num_experts


def estimate_params_and_hidden(emb_dim, hidden_dim, ffn_type, num_experts, match_dense=False):
    """Dense and MoE parameter counts; with `match_dense`, the experts' hidden size that
    makes num_experts experts plus the router as large as the dense layer."""
    dense_params = calc_ffn_params(emb_dim, hidden_dim, ffn_type)
    router = calc_router_params(emb_dim, num_experts)
    if match_dense:
        per_hidden_unit = num_experts * get_num_param_matrices(ffn_type) * emb_dim
        moe_hidden_dim = round((dense_params - router) / per_hidden_unit)
    else:
        moe_hidden_dim = hidden_dim
    per_expert_params = calc_ffn_params(emb_dim, moe_hidden_dim, ffn_type)
    return {"dense_params": dense_params, "router": router, "moe_hidden_dim": moe_hidden_dim,
            "per_expert_params": per_expert_params,
            "moe_total": num_experts * per_expert_params + router}


def active_params(estimate, top_k):
    """Parameters one token uses: top_k experts and the router."""
    return top_k * estimate["per_expert_params"] + estimate["router"]


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag."""
    parser = ScriptArgumentParser(description="Compare dense and MoE feed-forward parameters.")
    parser.add_argument("--emb-dim", type=positive_int, required=True)
    parser.add_argument("--hidden-dim", type=positive_int, required=True,
                        help="the dense layer's hidden size")
    parser.add_argument("--ffn-type", choices=sorted(FFN_MATRICES), default="swiglu")
    parser.add_argument("--num-experts", type=positive_int, default=8)
    parser.add_argument("--top-k", type=positive_int, default=2, help="experts per token")
    parser.add_argument("--dtype", choices=list(DTYPE_BYTES), default="bf16")
    parser.add_argument("--match-dense", action="store_true",
                        help="size the experts so the MoE layer has the dense layer's parameters")
    args = parser.parse_args(argv)
    if args.top_k > args.num_experts:
        parser.error(f"argument --top-k: {args.top_k} is more than "
                     f"--num-experts {args.num_experts}")
    return vars(args)


def main(settings):
    """Print the dense and MoE parameter counts for `settings` (parse_args's dict)."""
    ffn_type, num_experts, top_k, match_dense = (
        settings["ffn_type"], settings["num_experts"], settings["top_k"], settings["match_dense"])
    est = estimate_params_and_hidden(settings["emb_dim"], settings["hidden_dim"], ffn_type,
                                     num_experts, match_dense)
    nbytes = DTYPE_BYTES[settings["dtype"]]

    def line(label, params):
        print(f"{label:<26}{params:>16,} parameters ({convert_bytes(params * nbytes)})")

    line(f"Dense {ffn_type} FFN", est["dense_params"])
    line("Per expert", est["per_expert_params"])
    line("Router", est["router"])
    line(f"MoE total ({num_experts} experts)", est["moe_total"])
    line(f"Active per token (top-{top_k})", active_params(est, top_k))
    print(f"Expert hidden size: {est['moe_hidden_dim']}"
          + (" (matched to the dense layer)" if match_dense else ""))


if __name__ == "__main__":
    main(parse_args())
