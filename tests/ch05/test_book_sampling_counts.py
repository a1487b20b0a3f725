"""Section 5.3.1's sample counts, as the book prints them.

The book draws 1,000 tokens (seed 123) from the toy next-token distribution
of "every effort moves you" with `print_sampled_tokens` and prints how often
each word came up, then discusses temperatures 0.1 and 5. The chapter
notebook prints these counts at both temperatures.
"""

import torch

VOCAB = ["closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you"]
NEXT_TOKEN_LOGITS = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])
# The seeded draws (torch 2.13, CPU; words drawn 0 times omitted). At temperature 1
# these are the counts the book prints.
EXPECTED_COUNTS = {
    1: {"closer": 73, "forward": 582, "inches": 2, "toward": 343},
    0.1: {"forward": 985, "toward": 15},
    5: {"closer": 165, "every": 75, "effort": 42, "forward": 239, "inches": 71,
        "moves": 46, "pizza": 32, "toward": 227, "you": 103},
}


def sampled_counts(temperature):
    """The book's print_sampled_tokens, returning the counts instead of printing them."""
    probas = torch.softmax(NEXT_TOKEN_LOGITS / temperature, dim=0)
    torch.manual_seed(123)
    sample = [torch.multinomial(probas, num_samples=1).item() for _ in range(1_000)]
    counts = torch.bincount(torch.tensor(sample), minlength=len(VOCAB))
    return {VOCAB[i]: n for i, n in enumerate(counts.tolist()) if n}


def test_seeded_counts():
    for temperature, expected in EXPECTED_COUNTS.items():
        assert sampled_counts(temperature) == expected, temperature

