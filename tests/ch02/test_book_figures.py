"""The numbers that chapter 2 of the book prints, reproduced exactly."""

import torch

HELLO_TEXT = (
    "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
)
HELLO_IDS = [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250,
             8812, 2114, 286, 617, 34680, 27271, 13]


def test_the_verdict_has_20479_characters(the_verdict):
    assert len(the_verdict) == 20479
    assert the_verdict.startswith("I HAD always thought Jack Gisburn rather a cheap genius")


def test_regex_tokenizer_gives_4690_tokens_and_a_vocabulary_of_1130(ch02_notebook,
                                                                     the_verdict):
    tokens = ch02_notebook.split_into_tokens(the_verdict)
    assert len(tokens) == 4690
    assert tokens[:10] == ["I", "HAD", "always", "thought", "Jack", "Gisburn", "rather",
                           "a", "cheap", "genius"]
    assert len(set(tokens)) == 1130


def test_vocabulary_with_special_tokens_has_1132_entries(verdict_vocab):
    assert len(verdict_vocab) == 1132
    assert verdict_vocab["<|endoftext|>"] == 1130
    assert verdict_vocab["<|unk|>"] == 1131


def test_simple_tokenizer_v1_ids_of_the_book_sentence(ch02_notebook, verdict_vocab):
    text = """"It's the last he painted, you know," Mrs. Gisburn said with pardonable pride."""
    tokenizer = ch02_notebook.SimpleTokenizerV1(verdict_vocab)
    assert tokenizer.encode(text) == [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5,
                                      1, 67, 7, 38, 851, 1108, 754, 793, 7]


def test_simple_tokenizer_v2_ids_of_the_book_sentences(ch02_notebook, verdict_vocab):
    text = ("Hello, do you like tea? <|endoftext|> "
            "In the sunlit terraces of the palace.")
    tokenizer = ch02_notebook.SimpleTokenizerV2(verdict_vocab)
    ids = tokenizer.encode(text)
    assert ids == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988,
                   1131, 7]
    assert tokenizer.decode(ids) == (
        "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."
    )


def test_tiktoken_gives_5145_tokens(gpt2_tokenizer, the_verdict):
    assert len(gpt2_tokenizer.encode(the_verdict)) == 5145


def test_tiktoken_ids_of_the_hello_text(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode(HELLO_TEXT, allowed_special={"<|endoftext|>"})
    assert ids == HELLO_IDS
    assert gpt2_tokenizer.decode(ids) == HELLO_TEXT


def test_exercise_2_1_ids_of_an_unknown_word(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode("Akwirw ier")
    assert ids == [33901, 86, 343, 86, 220, 959]
    assert [gpt2_tokenizer.decode([i]) for i in ids] == ["Ak", "w", "ir", "w", " ", "ier"]


def test_first_two_batches_with_stride_1(gpt, gpt2_tokenizer, the_verdict):
    loader = gpt.create_dataloader_v1(
        the_verdict, batch_size=1, max_length=4, stride=1, shuffle=False
    )
    batches = iter(loader)
    inputs, targets = next(batches)
    assert inputs.tolist() == [[40, 367, 2885, 1464]]
    assert targets.tolist() == [[367, 2885, 1464, 1807]]
    inputs, targets = next(batches)
    assert inputs.tolist() == [[367, 2885, 1464, 1807]]
    assert targets.tolist() == [[2885, 1464, 1807, 3619]]


def test_batch_of_eight_windows_with_stride_4(gpt, gpt2_tokenizer, the_verdict):
    loader = gpt.create_dataloader_v1(
        the_verdict, batch_size=8, max_length=4, stride=4, shuffle=False
    )
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [
        [40, 367, 2885, 1464], [1807, 3619, 402, 271], [10899, 2138, 257, 7026],
        [15632, 438, 2016, 257], [922, 5891, 1576, 438], [568, 340, 373, 645],
        [1049, 5975, 284, 502], [284, 3285, 326, 11],
    ]
    assert targets[:, -1].tolist() == [1807, 10899, 15632, 922, 568, 1049, 284, 287]


def test_embedding_layer_with_seed_123():
    torch.manual_seed(123)
    layer = torch.nn.Embedding(6, 3)
    expected_rows = torch.tensor([[0.3374, -0.1778, -0.1690], [-2.8400, -0.7849, -1.4096]])
    torch.testing.assert_close(layer.weight[[0, 5]].detach(), expected_rows,
                               atol=1e-4, rtol=0)
