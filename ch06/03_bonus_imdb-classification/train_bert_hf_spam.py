"""Finetune a BERT-style encoder on chapter 6's SMS spam data (Hugging Face transformers).

    python train_bert_hf_spam.py                        # DistilBERT, all layers, 1 epoch
    python train_bert_hf_spam.py --model bert --num-epochs 3
    python train_bert_hf_spam.py --model path/to/folder # any saved encoder (works offline)

The SMS Spam Collection is downloaded (or taken from the folder named by
$LLMS_FROM_SCRATCH_MIRROR), balanced and split exactly as chapter 6 does
(1,045 / 149 / 300 messages), and the encoder is finetuned and evaluated as
train_bert_hf.py does with the IMDB reviews: the same options, and the same
printed losses and accuracies, so its figures sit beside chapter 6's GPT-2.
"""

from pathlib import Path

import torch
from downloads import DownloadError
from previous_chapters import SMS_SPAM_URL, download_and_unzip_spam_data, write_splits
from script_helpers import ScriptArgumentParser, writable_folder
from train_bert_hf import add_encoder_arguments, finetune_and_evaluate


def parse_args(argv=None):
    """The command line as a dict of plain values, one per flag."""
    parser = ScriptArgumentParser(
        description="Finetune a BERT-style encoder (transformers) on chapter 6's SMS spam "
                    "splits.")
    add_encoder_arguments(parser)
    parser.add_argument("--data-dir", type=writable_folder, default="sms_spam_collection",
                        help="where the SMS Spam Collection is downloaded and split")
    return vars(parser.parse_args(argv))


def main(settings):
    """Download and split the SMS Spam Collection, then finetune the encoder on it."""
    print(f"torch {torch.__version__}, device: {settings['device']}")
    script_name = Path(__file__).name
    data_dir = Path(settings["data_dir"])
    try:
        data_file = download_and_unzip_spam_data(
            SMS_SPAM_URL, data_dir / "sms_spam_collection.zip", data_dir,
            data_dir / "SMSSpamCollection.tsv")
        csv_paths = write_splits(data_file, data_dir)
    except (ValueError, DownloadError) as err:
        raise SystemExit(f"{script_name}: error: {err}") from None
    finetune_and_evaluate(settings, csv_paths, script_name)


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()
