"""The ladder on one device: chapter 5's loop with any of the ten speed-ups switched on.

    python 01_opt_single_gpu.py                      # every step this device runs
    python 01_opt_single_gpu.py --steps 1,3,6-9      # choose them
    python 01_opt_single_gpu.py --model small --max-steps 20 --steps none
    python 01_opt_single_gpu.py --help

From Python, as in the book repository: `main(GPT_CONFIG_124M, OTHER_SETTINGS)`,
with a "steps" key in the settings (default: all of them). The steps are
described in speed_ladder.py and README.md. A step the device cannot run (TF32
or pinned memory on a CPU, say) is refused with the reason.
"""

from script_helpers import ScriptArgumentParser
from speed_ladder import (  # noqa: F401  (the book's names, importable from here)
    STEPS,
    PyTorchMultiHeadAttention,
    add_ladder_arguments,
    config_and_settings,
    run_or_exit,
    train_model_simple_with_timing,
    train_single_process,
)


def main(gpt_config, settings):
    """Train with settings["steps"] switched on (the book's script: all ten)."""
    return train_single_process(gpt_config, {"steps": tuple(STEPS), **settings})


def parse_args(argv=None):
    """The command line as plain values: (gpt_config, settings), all checked."""
    parser = ScriptArgumentParser(
        description="Chapter 5's training loop with the speed ladder's steps switched on. "
                    "Defaults are the book repository's run.")
    add_ladder_arguments(parser, {"num_epochs": 15, "eval_freq": 10})
    args = parser.parse_args(argv)
    return config_and_settings(parser, args, args.steps)


def run_from_command_line(argv=None):
    """Parse, then train; a setting the data refutes stops in one line (exit 2)."""
    gpt_config, settings = parse_args(argv)
    return run_or_exit(main, gpt_config, settings)


if __name__ == "__main__":
    run_from_command_line()
