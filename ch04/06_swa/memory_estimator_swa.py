"""KV-cache memory with sliding-window attention (SWA) mixed with regular layers.

    python memory_estimator_swa.py --emb_dim 4096 --n_heads 32 --n_layers 32 \
        --context_length 32768 --n_kv_groups 4 --sliding_window_size 1024 \
        --swa_ratio "5:1" --dtype bf16

A sliding-window layer caches at most `sliding_window_size` tokens, a regular
layer the whole context. `--swa_ratio a:b` means a sliding layers for every b
regular ones ("1:0": all sliding). "GB" means 10^9 bytes; `--n_kv_groups` is
the number of query heads per key/value head, as in `../04_gqa`.
"""

import argparse
import math

from script_helpers import ScriptArgumentParser, positive_int

# Copied from ch04/04_gqa/memory_estimator_gqa.py::DTYPE_BYTES
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


# Copied from ch04/04_gqa/memory_estimator_gqa.py::convert_bytes
def convert_bytes(n):
    """Bytes as decimal gigabytes, e.g. '17.18 GB'."""
    return f"{n / 1000**3:,.2f} GB"


def calc_kv_bytes_per_layer(batch, context_length, head_dim, n_kv_heads, bytes_per_elem):
    """One layer's cache: a key and a value vector per key/value head and cached token."""
    return batch * context_length * head_dim * n_kv_heads * 2 * bytes_per_elem


def parse_ratio(ratio_str):
    """'a:b' -> (a, b), whole numbers >= 0 with a + b > 0; ValueError otherwise."""
    parts = ratio_str.split(":")
    try:
        a, b = (int(part) for part in parts)
    except ValueError:
        raise ValueError(f"expected 'a:b' with whole numbers, got {ratio_str!r}") from None
    if a < 0 or b < 0 or a + b == 0:
        raise ValueError(f"expected a, b >= 0 and a + b > 0, got {ratio_str!r}")
    return a, b


def distribute_layers(n_layers, a, b):
    """(sliding, regular) layer counts: blocks of a sliding then b regular layers.

    Layers left over after the last whole block are sliding first.
    """
    blocks, rest = divmod(n_layers, a + b)
    n_swa = blocks * a + min(a, rest)
    return n_swa, n_layers - n_swa


def estimate_totals(context_length, sliding_window_size, emb_dim, n_heads, n_layers, n_kv_groups,
                    batch_size, dtype, swa_ratio):
    """Cache bytes with all regular layers and with the SWA mix, for MHA and GQA."""
    bytes_per_elem = DTYPE_BYTES[dtype]
    head_dim = math.ceil(emb_dim / n_heads)
    n_kv_heads_gqa = n_heads // n_kv_groups
    eff_W = min(context_length, sliding_window_size)
    n_swa_layers, n_full_layers = distribute_layers(n_layers, *parse_ratio(swa_ratio))

    def total(n_kv_heads, swa_layers, full_layers):
        def layer(tokens):
            return calc_kv_bytes_per_layer(batch_size, tokens, head_dim, n_kv_heads, bytes_per_elem)
        return swa_layers * layer(eff_W) + full_layers * layer(context_length)

    return {
        "bytes_per_elem": bytes_per_elem,
        "head_dim": head_dim,
        "n_kv_heads_gqa": n_kv_heads_gqa,
        "eff_W": eff_W,
        "n_swa_layers": n_swa_layers,
        "n_full_layers": n_full_layers,
        "total_mha_allfull": total(n_heads, 0, n_layers),
        "total_gqa_allfull": total(n_kv_heads_gqa, 0, n_layers),
        "total_mixed_mha": total(n_heads, n_swa_layers, n_full_layers),
        "total_mixed_gqa": total(n_kv_heads_gqa, n_swa_layers, n_full_layers),
    }


def ratio_argument(text):
    """argparse type for --swa-ratio: checked, kept as the string the estimator takes."""
    try:
        parse_ratio(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (estimate_totals's arguments)."""
    parser = ScriptArgumentParser(description="Estimate KV-cache memory with sliding-window "
                                              "attention (MHA and GQA).")
    parser.add_argument("--context-length", type=positive_int, default=1024)
    parser.add_argument("--sliding-window-size", type=positive_int, required=True)
    parser.add_argument("--emb-dim", type=positive_int, required=True)
    parser.add_argument("--n-heads", type=positive_int, required=True)
    parser.add_argument("--n-layers", type=positive_int, required=True)
    parser.add_argument("--n-kv-groups", type=positive_int, required=True,
                        help="query heads per key/value head, for the GQA lines")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--dtype", choices=list(DTYPE_BYTES), default="fp16")
    parser.add_argument("--swa-ratio", type=ratio_argument, default="1:0",
                        help="sliding:regular layers, e.g. 5:1 ('1:0': all sliding)")
    args = parser.parse_args(argv)
    if args.n_heads % args.n_kv_groups != 0:
        parser.error(f"argument --n-kv-groups: {args.n_kv_groups} does not divide "
                     f"--n-heads {args.n_heads}")
    return vars(args)


def main(settings):
    """Print the cache sizes with and without SWA for `settings` (parse_args's dict)."""
    r = estimate_totals(**settings)
    ratio = settings["swa_ratio"]
    print(f"Settings: context {settings['context_length']}, "
          f"window {settings['sliding_window_size']} (effective {r['eff_W']}), "
          f"emb_dim {settings['emb_dim']}, {settings['n_heads']} heads "
          f"(head_dim {r['head_dim']}), {settings['n_layers']} layers, {settings['dtype']}")
    print(f"Layers (ratio {ratio}): {r['n_swa_layers']} SWA + {r['n_full_layers']} FULL; "
          f"GQA: {r['n_kv_heads_gqa']} key/value heads")
    print(f"MHA, all FULL: {convert_bytes(r['total_mha_allfull'])}")
    print(f"GQA, all FULL: {convert_bytes(r['total_gqa_allfull'])}")
    print(f"MHA + SWA (ratio {ratio}): {convert_bytes(r['total_mixed_mha'])}")
    print(f"GQA + SWA (ratio {ratio}): {convert_bytes(r['total_mixed_gqa'])}")


if __name__ == "__main__":
    main(parse_args())
