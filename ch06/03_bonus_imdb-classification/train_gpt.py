"""Chapter 6's GPT classifier on the IMDB movie reviews.

    python download_prepare_dataset.py      # once: train.csv, validation.csv, test.csv
    python train_gpt.py                     # GPT-2 124M, last block, 256 tokens, 1 epoch
    python train_gpt.py --trainable-layers all --context-length 512
    python train_gpt.py --weights random --test-mode   # a tiny model on 16 reviews, seconds

The same experiment options as ../02_bonus_additional-experiments
(model size, pretrained or random weights, trainable layers, token position,
context length, LoRA, ...), run on the reviews in --data-dir. It prints the
training, validation and test accuracy and the training time and appends one
row to --results-csv. Reviews longer than --context-length tokens are cut.
"""

from pathlib import Path

import torch
from download_prepare_dataset import split_paths
from downloads import DownloadError
from previous_chapters import add_experiment_arguments, check_experiment_args, run_experiment
from script_helpers import ScriptArgumentParser


def parse_args(argv=None):
    """The command line as plain values: (`run_experiment`'s settings, the three CSV paths)."""
    parser = ScriptArgumentParser(
        description="Finetune GPT-2 to tell positive from negative movie reviews (IMDB).")
    add_experiment_arguments(parser)
    # IMDB reviews are long (often several hundred tokens): one epoch on the
    # first 256 tokens of each review keeps a run affordable
    parser.set_defaults(num_epochs=1, context_length="256")
    parser.add_argument("--data-dir", default="imdb_data",
                        help="folder with train.csv, validation.csv and test.csv")
    args = parser.parse_args(argv)
    check_experiment_args(parser, args)
    return vars(args), split_paths(args.data_dir, parser)


def main(settings, csv_paths):
    """Finetune GPT-2 on the three IMDb splits in `csv_paths` as `settings` says."""
    print(f"torch {torch.__version__}, device: {settings['device']}")
    try:
        run_experiment(settings, csv_paths, Path(__file__).name)
    except (ValueError, ImportError, DownloadError) as err:
        raise SystemExit(f"{Path(__file__).name}: error: {err}") from None


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(*parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()
