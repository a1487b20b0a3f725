"""Count the FLOPs of the GPT-2 models and measure how fast this machine runs them.

    python performance.py                      # all four sizes, 1 x 1024 tokens
    python performance.py --sizes 124M --seq-len 256 --repeats 2

Three questions, one function group each:

1. How many floating-point operations does one forward pass take?
   `count_flops` asks PyTorch (`torch.utils.flop_counter.FlopCounterMode`) on a
   model built on the "meta" device: meta tensors have shapes but no data, so
   even the 1.5B-parameter model costs no memory and no time to "run".
   `analytic_forward_flops` derives the same number by hand.
2. How fast does the device run the model? `measure_step_seconds` times
   forward passes (inference) or forward + backward passes (training).
3. How good is that? Model FLOPs utilisation (MFU) = the FLOPs the model needs
   per second at the measured speed, divided by the device's dense peak
   (`peak_flops_per_second`).
"""

import re
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from previous_chapters import GPT_CONFIG_124M, GPTModel
from script_helpers import ScriptArgumentParser, add_device_argument, positive_int, synchronize

# The four GPT-2 sizes differ only in width, depth and number of heads.
GPT2_SIZES = {
    "124M": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "355M": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "774M": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "1558M": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}


def gpt2_config(size):
    """The chapter's GPT_CONFIG_124M with the width and depth of another GPT-2 size."""
    return {**GPT_CONFIG_124M, **GPT2_SIZES[size]}


def meta_model(cfg):
    """A GPTModel whose tensors have shapes but no storage: free to build and to 'run'."""
    with torch.device("meta"):
        return GPTModel(cfg)


# ---------------------------------------------------------------------------
# 1. FLOPs: counted and derived
# ---------------------------------------------------------------------------

def count_flops(model, batch_size, seq_len, training=False):
    """FLOPs of one forward pass (or forward + backward) as PyTorch counts them.

    FlopCounterMode counts matrix multiplications (a product of an m x k and a
    k x n matrix is 2mkn FLOPs: one multiply and one add per term). Elementwise
    work (GELU, LayerNorm, softmax, bias additions) is left out: it is tiny in
    comparison and runs at memory speed, not at the matmul peak.
    """
    device = next(model.parameters()).device
    idx = torch.zeros(batch_size, seq_len, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        logits = model(idx)
        if training:
            loss = F.cross_entropy(logits.flatten(0, 1), idx.flatten())
            loss.backward()
    return counter.get_total_flops()


def counted_flops_by_part(model, batch_size, seq_len):
    """Forward FLOPs split into the model's parts, from FlopCounterMode's per-module counts.

    The counter files every operation under each module that is running, so
    the attention module's total holds both its four projections and the two
    matmuls between queries, keys and values; we separate them.
    """
    idx = torch.zeros(batch_size, seq_len, dtype=torch.long,
                      device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        model(idx)
    per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}

    def total(suffix):
        return sum(flops for name, flops in per_module.items()
                   if name.startswith("GPTModel.trf_blocks.") and name.endswith(suffix))

    projections = sum(total(f".att.{layer}") for layer in
                      ("W_query", "W_key", "W_value", "out_proj"))
    return {
        "attention projections (query, key, value, output)": projections,
        "attention scores and weighted values": total(".att") - projections,
        "feed-forward": total(".ff"),
        "output head": per_module["GPTModel.out_head"],
    }


def matmul_parameter_count(cfg):
    """Weights that take part in a matrix multiplication for every token.

    Per block: query, key, value and output projections (4 d^2) and the two
    feed-forward layers (2 * 4 d^2); then the output head (d * vocab). The
    embeddings are lookups, and biases and LayerNorm parameters are additions
    and multiplications by one number, not matmuls.
    """
    d = cfg["emb_dim"]
    return 12 * cfg["n_layers"] * d * d + d * cfg["vocab_size"]


def attention_matmul_flops(cfg, batch_size, seq_len):
    """FLOPs of the two matmuls inside attention that involve no weights.

    Queries times keys (T x d_head by d_head x T for each head) and attention
    weights times values (T x T by T x d_head for each head): 2 T^2 d FLOPs
    each, so 4 T^2 d per layer. The causal mask throws away half of the
    scores, but the matmul computes them all, so they count.
    """
    return 4 * cfg["n_layers"] * batch_size * seq_len**2 * cfg["emb_dim"]


def analytic_forward_flops(cfg, batch_size, seq_len):
    """The forward-pass FLOPs by hand: 2 N T for the weights plus the attention term.

    Each matmul weight does one multiply-add (2 FLOPs) per token.
    """
    weights = 2 * matmul_parameter_count(cfg) * batch_size * seq_len
    return weights + attention_matmul_flops(cfg, batch_size, seq_len)


def flops_table(sizes, batch_size, seq_len):
    """One row per GPT-2 size: counted forward/training FLOPs next to the rules of thumb.

    All numbers are exact integers, so that the comparisons can be exact too.
    """
    rows = []
    for size in sizes:
        cfg = gpt2_config(size)
        model = meta_model(cfg)
        n_params = sum(p.numel() for p in model.parameters())
        n_matmul = matmul_parameter_count(cfg)
        tokens = batch_size * seq_len
        rows.append({
            "size": size,
            "parameters": n_params,
            "matmul parameters": n_matmul,
            "forward FLOPs (counted)": count_flops(model, batch_size, seq_len),
            "forward FLOPs (2NT + attention)": analytic_forward_flops(cfg, batch_size, seq_len),
            "training FLOPs (counted)": count_flops(model, batch_size, seq_len, training=True),
            "6NT, N = all parameters": 6 * n_params * tokens,
            "6NT, N = matmul parameters": 6 * n_matmul * tokens,
        })
    return rows


# ---------------------------------------------------------------------------
# 2. Peak FLOP/s of the device
# ---------------------------------------------------------------------------

# Dense (no structured sparsity) peak TFLOP/s from NVIDIA's data sheets and
# architecture white papers. The data sheets print the tensor-core numbers
# "with sparsity", twice the dense rate; we halve them. "tf32" is what float32
# matmuls reach when PyTorch is allowed to use TF32 tensor cores
# (torch.set_float32_matmul_precision("high")); by default it is not, and
# float32 runs on the ordinary FP32 units. Names are matched against
# torch.cuda.get_device_name(); a card not listed here is measured instead.
NVIDIA_DENSE_PEAK_TFLOPS = [
    # (name pattern, {dtype: TFLOP/s}, source)
    (r"H100 PCIe", {"float32": 51.0, "tf32": 378.0, "bfloat16": 756.5},
     "NVIDIA H100 data sheet, PCIe"),
    (r"H100 (SXM|80GB HBM3)", {"float32": 67.0, "tf32": 494.5, "bfloat16": 989.5},
     "NVIDIA H100 data sheet, SXM"),
    (r"H200$", {"float32": 67.0, "tf32": 494.5, "bfloat16": 989.5},
     "NVIDIA H200 data sheet, SXM"),
    (r"A100", {"float32": 19.5, "tf32": 156.0, "bfloat16": 312.0},
     "NVIDIA A100 data sheet"),
    (r"\bA10$", {"float32": 31.2, "tf32": 62.5, "bfloat16": 125.0},
     "NVIDIA A10 data sheet"),
    (r"\bL4$", {"float32": 30.3, "tf32": 60.0, "bfloat16": 121.0},
     "NVIDIA L4 data sheet"),
    (r"RTX 4090$", {"float32": 82.6, "tf32": 82.6, "bfloat16": 165.2},
     "NVIDIA Ada GPU architecture white paper, FP32 accumulate"),
    (r"RTX 3090$", {"float32": 35.6, "tf32": 35.6, "bfloat16": 71.0},
     "NVIDIA GA102 (Ampere) GPU architecture white paper, FP32 accumulate"),
    (r"V100-SXM2", {"float32": 15.7}, "NVIDIA V100 data sheet, SXM2"),
    (r"\bT4$", {"float32": 8.1}, "NVIDIA T4 data sheet"),
]


def nvidia_dense_peak(device_name, dtype_name):
    """(TFLOP/s, source) from the table above, or None for unknown cards/dtypes."""
    for pattern, peaks, source in NVIDIA_DENSE_PEAK_TFLOPS:
        if re.search(pattern, device_name) and dtype_name in peaks:
            return peaks[dtype_name], source
    return None


def cuda_peak_dtype_name(dtype):
    """Which column of the table applies: float32 matmuls may run as TF32."""
    if dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return str(dtype).removeprefix("torch.")


def measure_matmul_flops(device, dtype, size=4096, repeats=5):
    """The FLOP/s that one large square torch.mm reaches here (best of `repeats`).

    A large matmul is the most favourable work there is: if the model's own
    matmuls reached this rate, MFU would be 100%.
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up: lets the library pick its kernel and allocate
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_flops_per_second(device, dtype, matmul_size=4096):
    """(FLOP/s, where the number comes from) for `dtype` matmuls on `device`.

    On a known NVIDIA card: the data-sheet dense peak. Elsewhere (CPUs, Apple
    GPUs, unlisted cards) we measure a large torch.mm, because a CPU's
    theoretical peak depends on its vector units, clock and core count, which
    PyTorch cannot tell us reliably.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        known = nvidia_dense_peak(name, cuda_peak_dtype_name(dtype))
        if known is not None:
            tflops, source = known
            return tflops * 1e12, f"{name}: {tflops} TFLOP/s dense peak, {source}"
    measured = measure_matmul_flops(device, dtype, size=matmul_size)
    return measured, (f"measured: {matmul_size}x{matmul_size} torch.mm in {dtype} "
                      f"on {device.type} reached {measured / 1e9:.1f} GFLOP/s")


# ---------------------------------------------------------------------------
# 3. Measured speed and MFU
# ---------------------------------------------------------------------------

def measure_step_seconds(model, batch_size, seq_len, training=False, repeats=3):
    """Best time of one forward (or forward + backward) pass over random tokens.

    The optimizer update is left out: it is elementwise work (a few FLOPs per
    parameter, not per token) and Adam's state would double the memory needed.
    """
    device = next(model.parameters()).device
    vocab_size = model.tok_emb.num_embeddings
    idx = torch.randint(0, vocab_size, (batch_size, seq_len), device=device)
    model.train(training)

    def step():
        if training:
            logits = model(idx)
            F.cross_entropy(logits.flatten(0, 1).float(), idx.flatten()).backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(idx)

    step()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def throughput_row(cfg, device, dtype, batch_size, seq_len, peak, training, repeats=3):
    """Tokens/s, achieved model FLOP/s and MFU of the model `cfg` describes, on `device`."""
    flops = count_flops(meta_model(cfg), batch_size, seq_len, training=training)
    torch.manual_seed(123)
    model = GPTModel(cfg).to(device=device, dtype=dtype)
    seconds = measure_step_seconds(model, batch_size, seq_len, training, repeats)
    del model
    return {
        "mode": "training (fwd+bwd)" if training else "inference (fwd)",
        "seconds per step": seconds,
        "tokens/s": batch_size * seq_len / seconds,
        "model GFLOP/s": flops / seconds / 1e9,
        "MFU": flops / seconds / peak,
    }


def default_dtype(device):
    """bfloat16 where the GPU supports it (as in practice), else float32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def markdown_table(rows, formats):
    """Render a list of dicts as a Markdown table; `formats` maps column -> format spec."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [format(row[c], formats.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag (the device a torch.device)."""
    parser = ScriptArgumentParser(
        description="FLOPs, throughput and model FLOPs utilisation of the GPT-2 sizes."
    )
    parser.add_argument("--sizes", nargs="+", default=list(GPT2_SIZES),
                        choices=list(GPT2_SIZES), help="GPT-2 sizes whose FLOPs to count")
    parser.add_argument("--throughput-sizes", nargs="+", default=["124M", "355M"],
                        choices=list(GPT2_SIZES),
                        help="GPT-2 sizes to time (the 1558M model needs ~13 GB to train)")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--seq-len", type=positive_int, default=1024, help="tokens per sequence")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed steps; the fastest counts")
    parser.add_argument("--matmul-size", type=positive_int, default=4096,
                        help="matrix size for measuring the achievable matmul FLOP/s")
    parser.add_argument("--skip-training", action="store_true",
                        help="measure inference only (training needs ~3x the time and memory)")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    context_length = GPT_CONFIG_124M["context_length"]
    if args.seq_len > context_length:
        parser.error(f"argument --seq-len: GPT-2 reads at most {context_length} tokens, "
                     f"got {args.seq_len}")
    return vars(args)


def main(settings):
    """Count FLOPs and time the sizes `settings` (parse_args's dict) names; print tables."""
    device, batch_size, seq_len = settings["device"], settings["batch_size"], settings["seq_len"]
    dtype = default_dtype(device)
    print(f"torch {torch.__version__}, device: {device}, dtype: {dtype}, "
          f"threads: {torch.get_num_threads()}")
    print(f"batch size {batch_size}, sequence length {seq_len}\n")

    flop_rows = flops_table(settings["sizes"], batch_size, seq_len)
    gflop_rows = [{name: value / 1e9 if ("FLOPs" in name or "6NT" in name) else value
                   for name, value in row.items()} for row in flop_rows]
    print("FLOPs in GFLOPs (1e9):")
    print(markdown_table(gflop_rows, {c: ",.1f" for c in gflop_rows[0] if c != "size"}
                         | {"parameters": ",", "matmul parameters": ","}))

    peak, peak_source = peak_flops_per_second(device, dtype, settings["matmul_size"])
    print(f"\npeak used for MFU: {peak_source}\n")
    rows = []
    for size in settings["throughput_sizes"]:
        for training in ([False] if settings["skip_training"] else [False, True]):
            row = throughput_row(gpt2_config(size), device, dtype, batch_size,
                                 seq_len, peak, training, settings["repeats"])
            rows.append({"size": size, **row})
    print(markdown_table(rows, {"seconds per step": ".2f", "tokens/s": ",.0f",
                                "model GFLOP/s": ",.1f", "MFU": ".1%"}))


if __name__ == "__main__":
    main(parse_args())
