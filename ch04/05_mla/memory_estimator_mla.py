"""KV-cache memory of multi-head, grouped-query and multi-head latent attention.

    python memory_estimator_mla.py --context_length 8192 --emb_dim 2048 --n_heads 24 \
        --n_layers 48 --n_kv_groups 4 --latent_dim 1024 --dtype bf16

MHA and GQA cache a key and a value vector per key/value head, layer and token;
MLA caches one latent vector of `latent_dim` numbers per layer and token (no
factor 2: keys and values are both rebuilt from it). "GB" means 10^9 bytes.
`--n_kv_groups` is the number of query heads per key/value head, as in
`../04_gqa/memory_estimator_gqa.py`.
"""

import math

from script_helpers import ScriptArgumentParser, positive_int

# Copied from ch04/04_gqa/memory_estimator_gqa.py::DTYPE_BYTES
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


# Copied from ch04/04_gqa/memory_estimator_gqa.py::convert_bytes
def convert_bytes(n):
    """Bytes as decimal gigabytes, e.g. '17.18 GB'."""
    return f"{n / 1000**3:,.2f} GB"


# Copied from ch04/04_gqa/memory_estimator_gqa.py::calc_kv_bytes_total
def calc_kv_bytes_total(batch, context_length, emb_dim, n_heads, n_kv_heads, n_layers,
                        bytes_per_elem):
    """KV-cache bytes of all layers: keys and values (x 2) of every key/value head and token.

    head_dim is rounded up when n_heads does not divide emb_dim, as the book does.
    """
    head_dim = math.ceil(emb_dim / n_heads)
    per_layer = batch * context_length * head_dim * n_kv_heads * 2 * bytes_per_elem
    return per_layer * n_layers


def calc_mla_bytes_total(batch, context_length, n_layers, latent_dim, bytes_per_elem):
    """MLA cache bytes of all layers: one latent vector per token and layer."""
    return batch * context_length * n_layers * latent_dim * bytes_per_elem


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (mla_estimates's arguments)."""
    parser = ScriptArgumentParser(description="Estimate KV-cache memory for MHA, GQA and MLA.")
    parser.add_argument("--context-length", type=positive_int, default=1024)
    parser.add_argument("--emb-dim", type=positive_int, required=True)
    parser.add_argument("--n-heads", type=positive_int, required=True)
    parser.add_argument("--n-layers", type=positive_int, required=True)
    parser.add_argument("--n-kv-groups", type=positive_int, required=True,
                        help="query heads per key/value head, for the GQA line")
    parser.add_argument("--latent-dim", type=positive_int, required=True,
                        help="MLA per-token latent dimension")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--dtype", choices=list(DTYPE_BYTES), default="fp16")
    args = parser.parse_args(argv)
    if args.n_heads % args.n_kv_groups != 0:
        parser.error(f"argument --n-kv-groups: {args.n_kv_groups} does not divide "
                     f"--n-heads {args.n_heads}")
    return vars(args)


def mla_estimates(context_length, emb_dim, n_heads, n_layers, n_kv_groups, latent_dim, batch_size,
             dtype):
    """The MHA, GQA and MLA cache sizes in bytes."""
    bytes_per_elem = DTYPE_BYTES[dtype]
    common = (batch_size, context_length, emb_dim, n_heads)
    return {
        "head_dim": math.ceil(emb_dim / n_heads),
        "n_kv_heads_gqa": n_heads // n_kv_groups,
        "total_mha": calc_kv_bytes_total(*common, n_heads, n_layers, bytes_per_elem),
        "total_gqa": calc_kv_bytes_total(*common, n_heads // n_kv_groups, n_layers,
                                         bytes_per_elem),
        "total_mla": calc_mla_bytes_total(batch_size, context_length, n_layers, latent_dim,
                                          bytes_per_elem),
    }


def main(settings):
    """Print the MHA, GQA and MLA cache sizes for `settings` (parse_args's dict)."""
    result = mla_estimates(**settings)
    mha, gqa, mla = result["total_mha"], result["total_gqa"], result["total_mla"]
    print(f"Settings: context {settings['context_length']}, emb_dim {settings['emb_dim']}, "
          f"{settings['n_heads']} heads (head_dim {result['head_dim']}), "
          f"{settings['n_layers']} layers, batch {settings['batch_size']}, {settings['dtype']}")
    print(f"GQA: {result['n_kv_heads_gqa']} key/value heads; "
          f"MLA: latent_dim {settings['latent_dim']}")
    print(f"MHA KV cache: {convert_bytes(mha)}")
    print(f"GQA KV cache: {convert_bytes(gqa)}")
    print(f"MLA latent cache: {convert_bytes(mla)}")
    print(f"MHA / GQA: {mha / gqa:.2f}x (GQA saves {100 * (1 - gqa / mha):.2f}%)")
    print(f"MHA / MLA: {mha / mla:.2f}x (MLA saves {100 * (1 - mla / mha):.2f}%)")


if __name__ == "__main__":
    main(parse_args())
