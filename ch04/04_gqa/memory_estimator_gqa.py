"""How much memory the KV cache takes with multi-head vs grouped-query attention.

    python memory_estimator_gqa.py --emb_dim 4096 --n_heads 32 --n_layers 32 \
        --context_length 32768 --n_kv_groups 4 --dtype bf16

Per layer and token the cache keeps one key and one value vector of head_dim
numbers for every key/value head. "GB" here means 10^9 bytes, as in the book.

Note the book's meaning of `--n_kv_groups` here: the number of query heads that
share one key/value head, so there are n_heads / n_kv_groups key/value heads.
(`gpt_with_kv_gqa.py --n_kv_groups` counts the key/value heads themselves.)
"""

import math

from script_helpers import ScriptArgumentParser, positive_int

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


def convert_bytes(n):
    """Bytes as decimal gigabytes, e.g. '17.18 GB'."""
    return f"{n / 1000**3:,.2f} GB"


def calc_kv_bytes_total(batch, context_length, emb_dim, n_heads, n_kv_heads, n_layers,
                        bytes_per_elem):
    """KV-cache bytes of all layers: keys and values (x 2) of every key/value head and token.

    head_dim is rounded up when n_heads does not divide emb_dim, as the book does.
    """
    head_dim = math.ceil(emb_dim / n_heads)
    per_layer = batch * context_length * head_dim * n_kv_heads * 2 * bytes_per_elem
    return per_layer * n_layers


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (gqa_estimates's arguments)."""
    parser = ScriptArgumentParser(description="Estimate KV-cache memory for MHA and GQA.")
    parser.add_argument("--context-length", type=positive_int, default=1024)
    parser.add_argument("--emb-dim", type=positive_int, required=True)
    parser.add_argument("--n-heads", type=positive_int, required=True)
    parser.add_argument("--n-layers", type=positive_int, required=True)
    parser.add_argument("--n-kv-groups", type=positive_int, required=True,
                        help="query heads per key/value head (the book's meaning here)")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--dtype", choices=list(DTYPE_BYTES), default="fp16")
    args = parser.parse_args(argv)
    if args.n_heads % args.n_kv_groups != 0:
        parser.error(f"argument --n-kv-groups: {args.n_kv_groups} does not divide "
                     f"--n-heads {args.n_heads}")
    return vars(args)


def gqa_estimates(context_length, emb_dim, n_heads, n_layers, n_kv_groups, batch_size, dtype):
    """The MHA and GQA cache sizes in bytes, and the settings they follow from."""
    bytes_per_elem = DTYPE_BYTES[dtype]
    n_kv_heads = n_heads // n_kv_groups
    common = (batch_size, context_length, emb_dim, n_heads)
    return {
        "head_dim": math.ceil(emb_dim / n_heads),
        "n_kv_heads_gqa": n_kv_heads,
        "total_mha": calc_kv_bytes_total(*common, n_heads, n_layers, bytes_per_elem),
        "total_gqa": calc_kv_bytes_total(*common, n_kv_heads, n_layers, bytes_per_elem),
    }


def main(settings):
    """Print the MHA and GQA cache sizes for `settings` (parse_args's dict)."""
    result = gqa_estimates(**settings)
    print(f"Settings: context {settings['context_length']}, emb_dim {settings['emb_dim']}, "
          f"{settings['n_heads']} heads (head_dim {result['head_dim']}), "
          f"{settings['n_layers']} layers, batch {settings['batch_size']}, {settings['dtype']}")
    print(f"GQA: {settings['n_kv_groups']} query heads per key/value head -> "
          f"{result['n_kv_heads_gqa']} key/value heads")
    print(f"MHA KV cache: {convert_bytes(result['total_mha'])}")
    print(f"GQA KV cache: {convert_bytes(result['total_gqa'])}")
    print(f"MHA / GQA: {result['total_mha'] / result['total_gqa']:.2f}x, "
          f"GQA saves {100 * (1 - result['total_gqa'] / result['total_mha']):.2f}%")


if __name__ == "__main__":
    main(parse_args())
