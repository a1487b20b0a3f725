"""GPTDatasetV1 and create_dataloader_v1 (canonical copy in ch04's gpt.py).

Window properties are checked on integer "texts" whose token ids are known in
advance, so every expected window can be written down independently.
"""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st


class ListTokenizer:
    """Stands in for tiktoken: 'encodes' any text into a fixed list of ids."""

    def __init__(self, token_ids):
        self.token_ids = token_ids
        self.allowed_special = None

    def encode(self, text, allowed_special=frozenset()):
        self.allowed_special = allowed_special
        return list(self.token_ids)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    token_ids=st.lists(st.integers(0, 50256), max_size=120),
    max_length=st.integers(1, 20),
    stride=st.integers(1, 20),
)
def test_windows_follow_stride_and_targets_are_shifted_inputs(gpt, token_ids, max_length,
                                                              stride):
    dataset = gpt.GPTDatasetV1("unused", ListTokenizer(token_ids), max_length, stride)

    expected_windows = max(0, math.ceil((len(token_ids) - max_length) / stride))
    assert len(dataset) == expected_windows
    for index in range(len(dataset)):
        inputs, targets = dataset[index]
        start = index * stride
        assert inputs.tolist() == token_ids[start:start + max_length]
        assert targets.tolist() == token_ids[start + 1:start + max_length + 1]
        assert torch.equal(targets[:-1], inputs[1:])


def test_dataset_allows_the_endoftext_token(gpt, gpt2_tokenizer):
    tokenizer = ListTokenizer([1, 2, 3])
    gpt.GPTDatasetV1("unused", tokenizer, max_length=2, stride=1)
    assert tokenizer.allowed_special == {"<|endoftext|>"}

    text = "one two <|endoftext|> three four five six"
    dataset = gpt.GPTDatasetV1(text, gpt2_tokenizer, max_length=4, stride=4)
    assert 50256 in dataset[0][0].tolist()


def test_loader_batches_and_drop_last(gpt, gpt2_tokenizer, the_verdict):
    n_tokens = len(gpt2_tokenizer.encode(the_verdict))
    n_windows = math.ceil((n_tokens - 256) / 128)

    loader = gpt.create_dataloader_v1(the_verdict, shuffle=False)  # book defaults
    assert len(loader.dataset) == n_windows
    assert len(loader) == n_windows // 4
    batches = list(loader)
    assert all(inputs.shape == targets.shape == (4, 256) for inputs, targets in batches)

    kept_all = gpt.create_dataloader_v1(the_verdict, shuffle=False, drop_last=False)
    assert len(kept_all) == math.ceil(n_windows / 4)
    assert list(kept_all)[-1][0].shape == (n_windows % 4 or 4, 256)


def test_shuffled_epoch_reorders_whole_windows(gpt, the_verdict):
    ordered = gpt.create_dataloader_v1(
        the_verdict, batch_size=8, max_length=4, stride=4, shuffle=False, drop_last=False
    )
    torch.manual_seed(123)
    shuffled = gpt.create_dataloader_v1(
        the_verdict, batch_size=8, max_length=4, stride=4, shuffle=True, drop_last=False
    )

    def windows(loader):
        return [tuple(row) for inputs, _ in loader for row in inputs.tolist()]

    first_epoch, second_epoch = windows(shuffled), windows(shuffled)
    assert sorted(first_epoch) == sorted(second_epoch) == sorted(windows(ordered))
    assert first_epoch != windows(ordered)
    assert first_epoch != second_epoch
