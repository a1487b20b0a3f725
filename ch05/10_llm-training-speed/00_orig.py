"""The ladder's bottom rung: chapter 5's training loop with timing, no speed-ups.

    python 00_orig.py                          # the book repository's run (124M, 1,024 tokens)
    python 00_orig.py --model small --max-steps 20   # a CPU-sized look
    python 00_orig.py --help

or, as the book repository does it, from Python:

    train_losses, val_losses, tokens_seen, model = main(GPT_CONFIG_124M, OTHER_SETTINGS)

with OTHER_SETTINGS holding learning_rate, num_epochs, batch_size and
weight_decay (the other keys are in speed_ladder.LADDER_DEFAULTS). It trains
on Middlemarch (Project Gutenberg #145), downloaded once beside this file; with
no network it says so and trains on the-verdict.txt. Every step prints its
tokens per second; the end prints the average and the peak memory.
"""

from script_helpers import ScriptArgumentParser
from speed_ladder import (  # noqa: F401  (the book's names, importable from here)
    GPTModel,
    add_ladder_arguments,
    config_and_settings,
    create_dataloader_v1,
    run_or_exit,
    train_model_simple_with_timing,
    train_single_process,
)


def main(gpt_config, settings):
    """Train GPTModel(gpt_config) the chapter's way; returns the book's four values."""
    return train_single_process(gpt_config, {**settings, "steps": ()})


def parse_args(argv=None):
    """The command line as plain values: (gpt_config, settings), all checked."""
    parser = ScriptArgumentParser(
        description="Chapter 5's training loop with timing: the speed ladder's baseline. "
                    "Defaults are the book repository's run.")
    add_ladder_arguments(parser, {"num_epochs": 15, "eval_freq": 15}, steps=False)
    args = parser.parse_args(argv)
    return config_and_settings(parser, args, ())


def run_from_command_line(argv=None):
    """Parse, then train; a setting the data refutes stops in one line (exit 2)."""
    gpt_config, settings = parse_args(argv)
    return run_or_exit(main, gpt_config, settings)


if __name__ == "__main__":
    run_from_command_line()
