"""A classic baseline: logistic regression on word counts (scikit-learn).

    python train_sklearn_logreg.py                          # TF-IDF of words and word pairs
    python train_sklearn_logreg.py --features bow --ngram-max 1
    python train_sklearn_logreg.py --data-dir ../01_main-chapter-code/sms_spam_collection

It reads train.csv, validation.csv and test.csv from --data-dir (as written by
download_prepare_dataset.py; chapter 6's spam splits work too), turns every
text into a vector of word (and word-pair) counts or TF-IDF weights learned on
the training split, fits a logistic-regression classifier and prints its
accuracy on the three splits with the training time. For scale it also prints
a majority-class baseline: always answer the most frequent training label.
A GPT or BERT classifier is only interesting where it beats these numbers.
"""

import time
from pathlib import Path

from download_prepare_dataset import SPLIT_NAMES, read_split, split_paths
from script_helpers import ScriptArgumentParser, exit_with_error, positive_float, positive_int


def accuracy(predictions, labels):
    return sum(int(p == y) for p, y in zip(predictions, labels, strict=True)) / len(labels)


def make_vectorizer(features, ngram_max, min_df):
    """Word counts (bow) or TF-IDF weights of 1- to `ngram_max`-word sequences."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    vectorizer = TfidfVectorizer if features == "tfidf" else CountVectorizer
    return vectorizer(ngram_range=(1, ngram_max), min_df=min_df, lowercase=True)


def train_and_evaluate(splits, features="tfidf", ngram_max=2, min_df=2, c=1.0, max_iter=1000):
    """Fit the majority-class baseline and the logistic regression on splits["train"].

    `splits` maps split names to (texts, labels). Returns {method: {split: accuracy}}
    and the logistic regression's training time in seconds (vectorizing included).
    """
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    train_texts, train_labels = splits["train"]
    majority = DummyClassifier(strategy="most_frequent").fit([[0]] * len(train_labels),
                                                             train_labels)
    start = time.perf_counter()
    vectorizer = make_vectorizer(features, ngram_max, min_df)
    train_vectors = vectorizer.fit_transform(train_texts)
    model = LogisticRegression(C=c, max_iter=max_iter).fit(train_vectors, train_labels)
    train_time = time.perf_counter() - start

    results = {"majority class": {}, f"logistic regression ({features})": {}}
    for name, (texts, labels) in splits.items():
        results["majority class"][name] = accuracy(majority.predict([[0]] * len(labels)), labels)
        predictions = model.predict(vectorizer.transform(texts))
        results[f"logistic regression ({features})"][name] = accuracy(predictions, labels)
    return results, train_time


def parse_args(argv=None):
    """The command line as plain values: (a settings dict, the three CSV paths)."""
    parser = ScriptArgumentParser(
        description="Logistic regression on word counts, and a majority-class baseline.")
    parser.add_argument("--data-dir", default="imdb_data",
                        help="folder with train.csv, validation.csv and test.csv")
    parser.add_argument("--features", choices=("tfidf", "bow"), default="tfidf",
                        help="TF-IDF weights or plain word counts (bag of words)")
    parser.add_argument("--ngram-max", type=positive_int, default=2,
                        help="longest word sequence used as a feature (1: single words)")
    parser.add_argument("--min-df", type=positive_int, default=2,
                        help="ignore words in fewer training texts than this")
    parser.add_argument("--c", type=positive_float, default=1.0,
                        help="inverse regularization strength of the logistic regression")
    parser.add_argument("--max-iter", type=positive_int, default=1000,
                        help="most solver iterations")
    settings = vars(parser.parse_args(argv))
    return settings, split_paths(settings["data_dir"], parser)


def check_splits_fit_options(splits, min_df):
    """Before any fitting: a classifier needs two classes; --min-df needs enough texts."""
    texts, labels = splits["train"]
    if len(set(labels)) < 2:
        exit_with_error(f"argument --data-dir: the training split has "
                             f"{len(set(labels))} class(es); a classifier needs at least 2")
    if min_df > len(texts):
        exit_with_error(f"argument --min-df: {min_df} is more than the {len(texts)} "
                             "training texts (no word could be kept)")


def main(settings, csv_paths):
    """Fit and evaluate on the three splits in `csv_paths` as `settings` says; print it."""
    try:
        import sklearn
    except ImportError:
        raise SystemExit(f"{Path(__file__).name}: error: this baseline needs scikit-learn: "
                         "pip install scikit-learn") from None
    print(f"scikit-learn {sklearn.__version__}")
    try:
        splits = {name: read_split(path)
                  for name, path in zip(SPLIT_NAMES, csv_paths, strict=True)}
    except (ValueError, IndexError, UnicodeDecodeError) as err:
        exit_with_error(f"argument --data-dir: {err}")
    check_splits_fit_options(splits, settings["min_df"])
    print(", ".join(f"{len(labels):,} {name}" for name, (_, labels) in splits.items()),
          "texts")
    try:
        results, train_time = train_and_evaluate(
            splits, settings["features"], settings["ngram_max"], settings["min_df"],
            settings["c"], settings["max_iter"])
    except ValueError as err:  # scikit-learn: e.g. "After pruning, no terms remain"
        exit_with_error(f"argument --min-df: scikit-learn refused the data ({err})")
    for method, accuracies in results.items():
        print(f"{method}: " + ", ".join(f"{name} accuracy {value * 100:.2f}%"
                                         for name, value in accuracies.items()))
    print(f"Training time (vectorizing and fitting): {train_time:.1f} s")


def run_from_command_line(argv=None):
    """Parse the command line (a bad value exits 2 naming it), then run `main`."""
    return main(*parse_args(argv))


if __name__ == "__main__":
    run_from_command_line()
