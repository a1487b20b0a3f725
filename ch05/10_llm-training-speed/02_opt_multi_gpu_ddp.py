"""The ladder on several processes: 01_opt_single_gpu.py under DistributedDataParallel.

    torchrun --nproc_per_node 4 02_opt_multi_gpu_ddp.py            # 4 GPUs, every step
    torchrun --nproc_per_node 2 02_opt_multi_gpu_ddp.py --device cpu --model tiny \\
        --steps 1,3,6,7,9 --max-steps 10                        # 2 CPU processes (gloo)
    python 02_opt_multi_gpu_ddp.py --help

torchrun starts one process per GPU (or per CPU share) and tells each its RANK
and the WORLD_SIZE. Every process trains a copy of the model on its own slice
of each global batch (a `DistributedSampler` deals the shuffled windows out),
and DDP averages the gradients, so all copies take the same optimizer step: one
process with a batch of N x B sequences takes the same steps as N processes with
B each. `--batch-size` is per process. Only rank 0 prints and writes files.
"""

import contextlib
import io
import os
from pathlib import Path

import torch
import torch.distributed as dist
from previous_chapters import GPTDatasetV1
from script_helpers import ScriptArgumentParser
from speed_ladder import (
    STEPS,
    add_ladder_arguments,
    build_model,
    config_and_settings,
    configure_backend,
    describe_steps,
    make_optimizer,
    prepare,
    run_or_exit,
    run_report,
    save_loss_plot,
    train_model_simple_with_timing,
    write_report_json,
)
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler


def ddp_setup(rank, world_size, device=None):
    """Join the process group: NCCL between GPUs, gloo between CPU processes.

    torchrun sets MASTER_ADDR and MASTER_PORT, where the processes meet. A
    plain `python` run is one process with no one to meet: an in-memory store
    serves it, so the same code runs both ways without opening a port (a port
    picked by probing can be taken by another program before the store binds it).
    """
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    backend = "nccl" if cuda else "gloo"
    if "MASTER_ADDR" not in os.environ and world_size == 1:
        dist.init_process_group(backend=backend, store=dist.HashStore(), rank=rank,
                                world_size=1)
    else:
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)


def distributed_loaders(text, tokenizer, context_length, batch_size, rank, world_size, seed,
                        pin_memory=False, num_workers=0, train_ratio=0.90):
    """Each rank's slice of every shuffled training batch; the whole validation text."""
    split_idx = int(train_ratio * len(text))
    train_set = GPTDatasetV1(text[:split_idx], tokenizer, context_length, context_length)
    val_set = GPTDatasetV1(text[split_idx:], tokenizer, context_length, context_length)
    # The sampler shuffles with the same seed everywhere, then deals the windows out
    # round-robin, so the ranks' batches together form the one-process global batch.
    sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed, drop_last=True)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler,
                              drop_last=True, num_workers=num_workers, pin_memory=pin_memory)
    val_loader = DataLoader(val_set, batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, pin_memory=pin_memory)
    return train_loader, val_loader


def main(gpt_config, settings, rank, world_size):
    """Train on `world_size` processes; rank 0 returns the book's four values."""
    settings = {"steps": tuple(STEPS), **settings}
    with contextlib.redirect_stdout(io.StringIO()) if rank else contextlib.nullcontext():
        return train_distributed(gpt_config, settings, rank, world_size)


def train_distributed(gpt_config, settings, rank, world_size):
    run = prepare(gpt_config, settings, world_size)  # every check before joining the group
    settings, steps = run.settings, run.settings["steps"]
    device = run.device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    if settings["threads"] is not None:
        torch.set_num_threads(settings["threads"])
    configure_backend(steps)
    ddp_setup(rank, world_size, device)
    try:
        print(f"torch {torch.__version__}, {world_size} process(es) on {device.type}; "
              f"steps: {describe_steps(steps)}")
        train_loader, val_loader = distributed_loaders(
            run.text, run.tokenizer, gpt_config["context_length"], run.batch_size, rank,
            world_size, settings["seed"], pin_memory=4 in steps,
            num_workers=settings["num_workers"])
        model = build_model(gpt_config, steps, device, settings["seed"])
        ddp_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        train_model = torch.compile(ddp_model) if 8 in steps else ddp_model
        optimizer = make_optimizer(model, steps, settings["learning_rate"],
                                   settings["weight_decay"])
        torch.manual_seed(settings["seed"])
        step_log = []
        train_losses, val_losses, tokens_seen = train_model_simple_with_timing(
            train_model, train_loader, val_loader, optimizer, device, settings["num_epochs"],
            settings["eval_freq"], settings["eval_iter"], settings["start_context"],
            run.tokenizer if settings["sample"] and rank == 0 else None,
            max_steps=settings["max_steps"], step_log=step_log, eval_model=model)
        report = global_report(settings, device, step_log, world_size)
        if rank == 0 and settings["loss_log"] is not None:
            write_report_json(settings["loss_log"], report)
        if rank == 0 and settings["output_dir"] is not None:
            os.makedirs(settings["output_dir"], exist_ok=True)
            save_loss_plot(Path(settings["output_dir"]) / "loss.pdf", settings["num_epochs"],
                           tokens_seen, train_losses, val_losses)
        print(f"All {world_size} process(es): {report['tokens_per_second']:,.0f} tok/sec")
        return train_losses, val_losses, tokens_seen, model
    finally:
        dist.destroy_process_group()


def global_report(settings, device, step_log, world_size):
    """The run report with every step's loss averaged over the ranks (the global batch's
    loss) and the tokens per second added up."""
    report = run_report(settings, device, step_log)
    losses = torch.tensor(report["losses"], dtype=torch.float64)
    speed = torch.tensor([report["tokens_per_second"]], dtype=torch.float64)
    dist.all_reduce(losses)
    dist.all_reduce(speed)
    report.update(losses=(losses / world_size).tolist(),
                  tokens_per_second=speed.item(), world_size=world_size)
    return report


def parse_args(argv=None, environ=os.environ):
    """Plain values: (gpt_config, settings, rank, world_size); torchrun's too, checked."""
    parser = ScriptArgumentParser(
        description="Chapter 5's training loop with the speed ladder on several processes "
                    "(start it with torchrun). Defaults are the book repository's run.")
    add_ladder_arguments(parser, {"num_epochs": 50, "eval_freq": 5})
    args = parser.parse_args(argv)
    numbers = {}
    for name, default, minimum in (("WORLD_SIZE", "1", 1), ("RANK", "0", 0)):
        value = environ.get(name, default)
        if not value.isdigit() or int(value) < minimum:
            parser.error(f"environment variable {name}: must be a whole number >= {minimum}, "
                         f"got {value!r} (torchrun sets it; --nproc_per_node must be >= 1)")
        numbers[name] = int(value)
    if numbers["RANK"] >= numbers["WORLD_SIZE"]:
        parser.error(f"environment variable RANK: {numbers['RANK']} is not below WORLD_SIZE "
                     f"{numbers['WORLD_SIZE']}")
    return (*config_and_settings(parser, args, args.steps), numbers["RANK"],
            numbers["WORLD_SIZE"])


def run_from_command_line(argv=None, environ=os.environ):
    """Parse, then train; a setting the data refutes stops in one line (exit 2)."""
    gpt_config, settings, rank, world_size = parse_args(argv, environ)
    return run_or_exit(main, gpt_config, settings, rank, world_size)


if __name__ == "__main__":
    run_from_command_line()
