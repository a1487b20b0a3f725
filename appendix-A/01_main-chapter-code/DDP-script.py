"""Distributed data-parallel (DDP) training of appendix A's toy network.

One process per device. Each process holds a full copy of the model, trains
on its own slice of the data, and after every backward pass PyTorch averages
the gradients across processes, so all copies take the same optimizer step
and stay identical.

How to run it:

    python DDP-script.py                      # spawns one process per GPU,
                                              # or 2 CPU processes (gloo)
    python DDP-script.py --num-procs 4        # 4 processes
    python DDP-script.py --device cpu         # CPU processes even where GPUs exist
    torchrun --nproc_per_node=2 DDP-script.py # let torchrun start the processes

NVIDIA GPUs use the NCCL backend; CPUs (and Windows) use gloo. DDP has no
backend for Apple GPUs, so on a Mac the processes run on the CPU.
"""

import os
import socket
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from script_helpers import (
    ScriptArgumentParser,
    add_device_argument,
    non_negative_int,
    positive_int,
)
from torch.utils.data.distributed import DistributedSampler


class ToyDataset(Dataset):
    def __init__(self, X, y):
        self.features = X
        self.labels = y

    def __getitem__(self, index):
        return self.features[index], self.labels[index]

    def __len__(self):
        return self.labels.shape[0]


class NeuralNetwork(torch.nn.Module):
    def __init__(self, num_inputs, num_outputs):
        super().__init__()
        self.layers = torch.nn.Sequential(
            # 1st hidden layer
            torch.nn.Linear(num_inputs, 30),
            torch.nn.ReLU(),
            # 2nd hidden layer
            torch.nn.Linear(30, 20),
            torch.nn.ReLU(),
            # output layer
            torch.nn.Linear(20, num_outputs),
        )

    def forward(self, x):
        logits = self.layers(x)
        return logits


def toy_data():
    """The appendix's five training points and two test points (2 features each)."""
    X_train = torch.tensor([
        [-1.2, 3.1], [-0.9, 2.9], [-0.5, 2.6], [2.3, -1.1], [2.7, -1.5],
    ])
    y_train = torch.tensor([0, 0, 0, 1, 1])
    X_test = torch.tensor([[-0.8, 2.8], [2.6, -1.6]])
    y_test = torch.tensor([0, 1])
    return ToyDataset(X_train, y_train), ToyDataset(X_test, y_test)


def backend_and_device(rank, device_type):
    """NCCL with one GPU per process on CUDA; gloo on the CPU otherwise."""
    if device_type == "cuda":
        torch.cuda.set_device(rank % torch.cuda.device_count())
        return "nccl", torch.device("cuda", rank % torch.cuda.device_count())
    return "gloo", torch.device("cpu")


def init_process_group(rank, world_size, backend):
    # The rendezvous address: set by torchrun or run_from_command_line; the book's
    # defaults when `main` is spawned some other way.
    os.environ.setdefault("MASTER_ADDR", "localhost")
    os.environ.setdefault("MASTER_PORT", "12345")
    if sys.platform == "win32":
        # PyTorch's Windows builds have no libuv; the rendezvous store must not use it.
        os.environ["USE_LIBUV"] = "0"
    dist.init_process_group(
        backend=backend, rank=rank, world_size=world_size,
        timeout=timedelta(seconds=60),  # a vanished peer fails the run instead of hanging
    )


def compute_accuracy(model, dataloader, device):
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for features, labels in dataloader:
            predictions = model(features.to(device)).argmax(dim=1)
            correct += (predictions == labels.to(device)).sum().item()
            total += labels.numel()
    return correct / total


def main(rank, world_size, num_epochs, fail_rank=None, device_type=None):
    """One process's training, as in the book: `mp.spawn(main, args=(world_size, num_epochs),
    nprocs=world_size)` runs it on every rank.

    `fail_rank` makes that rank raise (--fail-rank); `device_type` is "cuda" or "cpu"
    (None: CUDA where there is a GPU).
    """
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    backend, device = backend_and_device(rank, device_type)
    init_process_group(rank, world_size, backend)
    try:
        train_ds, test_ds = toy_data()
        # The sampler hands each process a different, non-overlapping slice.
        train_loader = DataLoader(train_ds, batch_size=2, shuffle=False, drop_last=True,
                                  sampler=DistributedSampler(train_ds))
        test_loader = DataLoader(test_ds, batch_size=2, shuffle=False)

        torch.manual_seed(123)  # same initial weights on every process
        model = NeuralNetwork(num_inputs=2, num_outputs=2).to(device)
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

        for epoch in range(num_epochs):
            train_loader.sampler.set_epoch(epoch)  # reshuffle differently each epoch
            model.train()
            for batch_idx, (features, labels) in enumerate(train_loader):
                if rank == fail_rank:
                    message = f"rank {rank}: simulated failure (--fail-rank)"
                    # Say it here too: if another rank dies first, spawn reports that one
                    print(message, file=sys.stderr, flush=True)
                    raise RuntimeError(message)
                logits = model(features.to(device))
                loss = F.cross_entropy(logits, labels.to(device))
                optimizer.zero_grad()
                loss.backward()  # DDP averages the gradients across processes here
                optimizer.step()
                print(f"[rank {rank}] epoch {epoch + 1:03d}/{num_epochs:03d} "
                      f"| batch size {labels.shape[0]:03d} | batch {batch_idx:03d} "
                      f"| loss {loss.item():.2f}", flush=True)

        train_acc = compute_accuracy(model, DataLoader(train_ds, batch_size=2), device)
        test_acc = compute_accuracy(model, test_loader, device)
        if rank == 0:
            print(f"Training accuracy: {train_acc}", flush=True)
            print(f"Test accuracy: {test_acc}", flush=True)
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawned_worker(rank, world_size, num_epochs, fail_rank, device_type):
    """Entry point of each process started by `mp.spawn`."""
    os.environ["RANK"] = str(rank)
    main(rank, world_size, num_epochs, fail_rank, device_type)


def parse_args(argv=None):
    """The command line as a plain settings dict, checked: a bad value exits 2 naming it.

    "device" is a torch.device (the CPU in place of an Apple GPU), and "num_procs" is
    filled in: one process per GPU, or 2 on the CPU.
    """
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-procs", type=positive_int, default=None,
                        help="processes to start (None: one per GPU, or 2 on a CPU)")
    parser.add_argument("--num-epochs", type=positive_int, default=3)
    parser.add_argument("--fail-rank", type=non_negative_int, default=None,
                        help="make this rank raise during training, to see how a failed "
                             "process ends the whole run")
    add_device_argument(parser)
    settings = vars(parser.parse_args(argv))
    if settings["device"].type == "mps":
        settings["device"] = torch.device("cpu")  # DDP has no backend for Apple GPUs
    if settings["num_procs"] is None:
        settings["num_procs"] = (torch.cuda.device_count() if settings["device"].type == "cuda"
                                 else 2)
    fail_rank, num_procs = settings["fail_rank"], settings["num_procs"]
    if fail_rank is not None and fail_rank >= num_procs:
        parser.error(f"argument --fail-rank: ranks are 0 to {num_procs - 1}, got {fail_rank}")
    return settings


def run_from_command_line(argv=None):
    """Parse the command line, then train on every rank; return the exit status.

    Under torchrun this process is one rank already; otherwise it starts
    --num-procs processes with `mp.spawn`.
    """
    settings = parse_args(argv)
    device_type, num_epochs = settings["device"].type, settings["num_epochs"]
    fail_rank = settings["fail_rank"]
    if "LOCAL_RANK" in os.environ:  # started by torchrun, which set up the rendezvous
        main(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
             num_epochs, fail_rank, device_type)
        return 0

    world_size = settings["num_procs"]
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    print(f"Starting {world_size} {device_type} processes (PyTorch {torch.__version__})",
          flush=True)
    try:
        # If any process raises, spawn stops the others and re-raises here.
        mp.spawn(spawned_worker,
                 args=(world_size, num_epochs, fail_rank, device_type),
                 nprocs=world_size, join=True)
    except mp.ProcessRaisedException as err:
        first_line = str(err).strip().splitlines()[-1]
        print(f"Training failed, all processes stopped: {first_line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_from_command_line())
