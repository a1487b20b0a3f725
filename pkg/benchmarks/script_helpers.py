# Copied from ch02/01_main-chapter-code/script_helpers.py
"""What every course script shares on its command line, and timing on a GPU.

Every folder with scripts has an identical copy of this file (a test keeps
the copies in sync), so each folder still runs on its own.

- `ScriptArgumentParser`: `argparse` with the course's conventions. `--help`
  shows each default; the book repository's underscore spellings
  (`--batch_size`) work for our hyphenated flags (`--batch-size`) without
  cluttering `--help`; a bad value ends the script with one line that names
  the argument (exit status 2), before any long work starts.
- Settings described once: `add_settings(parser, SETTINGS)` turns a table
  `key: (flag, kind, default, help)` into flags whose values land under the
  book's keys; `refuse_to_replace` stops a run before it would replace the
  files of an earlier one (unless `--overwrite`).
- `exit_with_error(message)`: the same one line and exit status for a check
  that needs the data a flag names (too few entries for one batch, a damaged
  file), made after `parse_args` but still before the long work.
- Checked types for `add_argument(type=...)`: `positive_int`,
  `non_negative_int`, `positive_float`, `non_negative_float`, `existing_file`,
  `writable_file`, `writable_folder`. The float types refuse `inf` and `nan`:
  a learning rate of `inf` would train a NaN model and save it.
- Devices: `add_device_argument(parser)` adds `--device auto|cpu|cuda|mps`;
  its value arrives as a `torch.device` (`resolve_device` does the work).
- `synchronize(device)`: GPU calls return before the GPU has finished, so
  timing code waits for the device before it reads the clock.
"""

import argparse
import math
import sys
import tempfile
from pathlib import Path

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICE_HELP = "where to run: cpu, cuda or mps; auto picks cuda, then mps, then cpu"


class ScriptArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser with the course's command-line conventions.

    `aliases` maps further old spellings to our flags, e.g.
    `{"--n_epochs": "--epochs"}`; plain underscore spellings of hyphenated
    flags need no entry.
    """

    def __init__(self, *args, aliases=None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args([self._our_spelling(arg) for arg in args], namespace)

    def _our_spelling(self, arg):
        """`--batch_size=8` -> `--batch-size=8` when only the hyphenated flag exists."""
        flag, equals, value = arg.partition("=")
        if not flag.startswith("--") or flag in self._option_string_actions:
            return arg
        ours = self.aliases.get(flag, "--" + flag[2:].replace("_", "-"))
        return ours + equals + value if ours in self._option_string_actions else arg

    def error(self, message):
        """One line naming the problem (argparse would print the usage first)."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(text, convert, kind):
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None


def positive_int(text):
    """A whole number >= 1 (a batch size, a number of repeats, ...)."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text):
    """A whole number >= 0 (warm-up calls, ...)."""
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _finite_float(text):
    value = _number(text, float, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text):
    """A finite number > 0 (a learning rate, a temperature, ...)."""
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_float(text):
    """A finite number >= 0 (a weight decay, ...)."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def existing_file(text):
    """The path of a file that exists (an input the script only reads)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def writable_file(text):
    """A path the script may write to: its folder exists and accepts a new file.

    Checked by creating (and removing) a temporary file there, which is what
    the final write will do, so this holds for read-only disks and ACLs too.
    """
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file name")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot write to {folder} ({err.strerror})") from None
    return path


def writable_folder(text):
    """A folder the script may write into: it accepts a new file, or can be created.

    Nothing is created here (a bad command line must leave no trace): an
    existing folder is tested with a temporary file, a missing one through
    its nearest existing parent, which must accept the new folder.
    """
    path = Path(text)
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot write to {existing} ({err.strerror})") from None
    return path


def default_device():
    return torch.device(
        "cuda" if torch.cuda.is_available()
        else "mps" if torch.backends.mps.is_available()
        else "cpu"
    )


def resolve_device(name):
    """The torch.device for a --device value; ValueError if this machine lacks it."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"expected one of {', '.join(DEVICE_CHOICES)}, got {name!r}")
    if name == "auto":
        return default_device()
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if not available[name]:
        raise ValueError(f"{name} is not available on this machine")
    return torch.device(name)


def _device_argument(text):
    try:
        return resolve_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def exit_with_error(message):
    """Stop like a bad command line: one line naming the argument, exit status 2.

    `message` starts with the argument, as argparse's own do ("argument
    --data-dir: ..."); the script's name comes first, as in `parser.error`.
    """
    print(f"{Path(sys.argv[0]).name}: error: {message} (see --help)", file=sys.stderr)
    sys.exit(2)


def add_settings(parser, settings):
    """One flag per entry of a SETTINGS table; each value lands under the entry's key.

    An entry is `key: (flag, kind, default, help)`; the kind is a checked type
    from script_helpers (or None: text), a tuple of choices, or bool for a switch.
    """
    for key, (flag, kind, default, help_text) in settings.items():
        if kind is bool:  # a switch, off by default
            parser.add_argument(flag, dest=key, action="store_true", help=help_text)
        elif isinstance(kind, tuple):  # one of these words
            parser.add_argument(flag, dest=key, choices=kind, default=default, help=help_text)
        else:
            parser.add_argument(flag, dest=key, type=kind, default=default, help=help_text,
                                metavar=flag[2:].replace("-", "_").upper())


def refuse_to_replace(parser, output_dir, names, overwrite):
    """Exit 2 naming --output-dir if it holds one of `names` and `overwrite` is off."""
    existing = [name for name in names if (Path(output_dir) / name).exists()]
    if existing and not overwrite:
        parser.error(f"argument --output-dir: {output_dir} already holds "
                     f"{', '.join(existing)}; pass --overwrite to replace")


def add_device_argument(parser):
    """Add `--device auto|cpu|cuda|mps`; the parsed value is a torch.device."""
    parser.add_argument("--device", type=_device_argument, default="auto",
                        metavar="{" + ",".join(DEVICE_CHOICES) + "}", help=DEVICE_HELP)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()
