"""Ways to load a saved GPTModel, and how much memory each one needs at its peak.

    python memory_efficient_loading.py --help
    python memory_efficient_loading.py --model gpt2-xl --folder checkpoints   # the README's table

The notebook memory-efficient-state-dict.ipynb walks through the same functions. Each
`load_*` function below is one approach; `measure` runs one approach in a fresh Python
process and reports its peak memory, because a process's peak resident memory can only
grow: measuring two approaches in one process would mix them up.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from previous_chapters import GPTModel
from script_helpers import ScriptArgumentParser, writable_folder

MODEL_SHAPES = {
    "gpt2-small": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
    "tiny": {"emb_dim": 64, "n_layers": 2, "n_heads": 2},  # for tests
}
GPT2_COMMON = {"vocab_size": 50257, "context_length": 1024, "drop_rate": 0.0, "qkv_bias": True}


def random_gpt2_config(size):
    return {**GPT2_COMMON, **MODEL_SHAPES[size]}


# --- the approaches --------------------------------------------------------------------

def load_naive(config, checkpoint):
    """The usual two lines: a model with random weights, then the saved weights.

    Both copies live in memory at the same time (the model's random weights and
    the state dict `torch.load` returns), so the peak is about twice the model.
    """
    model = GPTModel(config)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model


def load_meta_assign(config, checkpoint):
    """Build the model on the `meta` device (shapes only, no memory), then adopt the
    loaded tensors as its parameters with `assign=True` instead of copying into them.

    Only the state dict's copy of the weights is ever in memory.
    """
    with torch.device("meta"):
        model = GPTModel(config)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True),
                          assign=True)
    return model


def load_mmap_assign(config, checkpoint):
    """As `load_meta_assign`, but `mmap=True` maps the file into memory instead of
    reading it: the operating system pages the numbers in as they are used, and the
    parameters are views of the file's pages.
    """
    with torch.device("meta"):
        model = GPTModel(config)
    state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    model.load_state_dict(state_dict, assign=True)
    return model


def load_safetensors_by_tensor(config, checkpoint):
    """A normally built model, then one tensor at a time from a safetensors file.

    `safe_open` reads only the tensor asked for, so besides the model itself just
    one tensor (the largest is the output head) is in memory at a time.
    """
    from safetensors import safe_open

    model = GPTModel(config)
    parameters = dict(model.named_parameters()) | dict(model.named_buffers())
    with safe_open(checkpoint, framework="pt", device="cpu") as f, torch.no_grad():
        for name in f.keys():
            parameters[name].copy_(f.get_tensor(name))
    return model


def load_to_gpu_by_parameter(config, checkpoint):
    """On a GPU: build on `meta`, map the file, and move one tensor at a time to the
    GPU, so the GPU never holds more than the model and the CPU never holds more
    than the pages of one tensor.
    """
    with torch.device("meta"):
        model = GPTModel(config)
    state_dict = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    for name in list(state_dict):
        state_dict[name] = state_dict.pop(name).to("cuda")
    model.load_state_dict(state_dict, assign=True)
    return model


APPROACHES = {
    "naive": (load_naive, ".pth"),
    "meta-assign": (load_meta_assign, ".pth"),
    "mmap-assign": (load_mmap_assign, ".pth"),
    "safetensors-by-tensor": (load_safetensors_by_tensor, ".safetensors"),
    "gpu-by-parameter": (load_to_gpu_by_parameter, ".pth"),
}


# --- measuring --------------------------------------------------------------------------

def peak_resident_bytes():
    """The most physical memory this process has held so far (its peak RSS).

    On Linux this is VmHWM from /proc: unlike `getrusage`'s ru_maxrss, which a
    child process inherits from its parent at fork time, it starts afresh when a
    new program is executed, so a small child of a big parent is measured right.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in KiB
    try:
        import resource
    except ImportError:  # Windows has no `resource`; psutil reports the peak there
        import psutil
        return psutil.Process().memory_info().peak_wset
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS


def touch_every_weight(model):
    """Read every number once, as a first forward pass would.

    With `mmap=True` nothing is read from disk until it is used; touching the
    weights makes every approach end with a model that is really in memory.
    """
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.sum()


def model_bytes(model):
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def run_approach(name, config, checkpoint):
    """Load with one approach in this process; return what it cost.

    The baseline is the peak before loading (the interpreter, torch and its
    libraries), so `extra_bytes` is what the loading itself added.
    """
    load, _ = APPROACHES[name]
    baseline = peak_resident_bytes()
    if name == "gpu-by-parameter":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    model = load(config, checkpoint)
    touch_every_weight(model)
    seconds = time.perf_counter() - start
    peak = peak_resident_bytes()
    result = {"approach": name, "seconds": seconds, "model_bytes": model_bytes(model),
              "baseline_bytes": baseline, "extra_bytes": peak - baseline}
    if name == "gpu-by-parameter":
        result["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return result


def measure(name, config, checkpoint):
    """Run one approach in a fresh Python process and return its measurements."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--config-json", json.dumps(config), "--checkpoint", str(checkpoint)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{finished.stderr.strip()}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def write_checkpoints(config, folder, seed=123):
    """Save one random-weight model as `model.pth` and `model.safetensors` in `folder`.

    Files that already exist are kept (they take long to write for large models).
    Each is written to a temporary name and renamed when complete.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {suffix: folder / f"model{suffix}" for suffix in (".pth", ".safetensors")}
    if all(path.exists() for path in paths.values()):
        return paths
    torch.manual_seed(seed)
    state_dict = GPTModel(config).state_dict()
    for suffix, path in paths.items():
        temp = path.with_name(path.name + ".part")
        if suffix == ".pth":
            torch.save(state_dict, temp)
        else:
            save_file({k: v.contiguous() for k, v in state_dict.items()}, str(temp))
        os.replace(temp, path)
    return paths


def measure_all(config, folder, approaches=None):
    """Measure every approach (or the named ones) on checkpoints in `folder`."""
    paths = write_checkpoints(config, folder)
    names = approaches or [n for n in APPROACHES
                           if n != "gpu-by-parameter" or torch.cuda.is_available()]
    return [measure(name, config, paths[APPROACHES[name][1]]) for name in names]


def results_table(results):
    """A Markdown table: each approach's extra peak memory as a multiple of the model."""
    lines = ["| approach | model (GB) | extra peak RSS (GB) | x model size | seconds |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        size = r["model_bytes"]
        lines.append(f"| {r['approach']} | {size / 1e9:.2f} | {r['extra_bytes'] / 1e9:.2f} "
                     f"| {r['extra_bytes'] / size:.2f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it.

    The hidden --child, --config-json and --checkpoint are `measure`'s command line
    for one measurement in a fresh process.
    """
    parser = ScriptArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODEL_SHAPES), default="gpt2-xl",
                        help="GPT-2 size whose shape the random-weight checkpoint has")
    parser.add_argument("--folder", type=writable_folder, default="checkpoints",
                        help="where the checkpoints are written (kept for the next run)")
    parser.add_argument("--approach", action="append", choices=sorted(APPROACHES),
                        help="measure only this approach (repeatable); default: all")
    parser.add_argument("--child", choices=sorted(APPROACHES), help=argparse.SUPPRESS)
    parser.add_argument("--config-json", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    settings = vars(parser.parse_args(argv))
    if "gpu-by-parameter" in (settings["approach"] or []) and not torch.cuda.is_available():
        parser.error("argument --approach: gpu-by-parameter needs a CUDA GPU")
    return settings


def main(settings):
    """Measure as `settings` (parse_args's dict) says and print the Markdown table."""
    if settings["child"]:  # one measurement inside a fresh process (see `measure`)
        result = run_approach(settings["child"], json.loads(settings["config_json"]),
                              settings["checkpoint"])
        print(json.dumps(result))
        return
    model, folder = settings["model"], settings["folder"]
    print(f"torch {torch.__version__}; {model}: writing or reusing checkpoints "
          f"in {folder}", file=sys.stderr)
    print(results_table(measure_all(random_gpt2_config(model), folder, settings["approach"])))


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()
