"""ch05/14_ch05_with_other_llms: chapter 5's loop trains Llama 3.2 and Qwen3 from scratch.

Tiny configurations of the real architectures, a local tokenizer in the hub's
file format (the real ones cannot be downloaded here), a slice of The Verdict:
the loss must fall, and the data loader must cut the same windows as slicing
the token ids by hand.
"""

import pytest
import torch
from support.course_imports import import_course_module
from support.llama_checkpoints import write_tiktoken_bpe
from support.qwen3_checkpoints import write_qwen3_tokenizer_json

FOLDER = "ch05/14_ch05_with_other_llms"
TINY_LLAMA_CHANGES = {"vocab_size": 768, "context_length": 256, "emb_dim": 32, "n_heads": 4,
                      "n_layers": 1, "hidden_dim": 64, "n_kv_groups": 2,
                      "dtype": torch.float32}
TINY_QWEN3_CHANGES = {"vocab_size": 512, "context_length": 256, "emb_dim": 32, "n_heads": 4,
                      "head_dim": 8, "n_layers": 1, "hidden_dim": 64, "n_kv_groups": 2,
                      "dtype": torch.float32}


@pytest.fixture(scope="module")
def chapter():
    return import_course_module(f"{FOLDER}/previous_chapters.py")


@pytest.fixture(scope="module")
def verdict(needs_mirror):
    return (needs_mirror / "the-verdict.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def llama_tokenizer(tmp_path_factory):
    llama32 = import_course_module(f"{FOLDER}/llama32.py")
    path = write_tiktoken_bpe(tmp_path_factory.mktemp("llama") / "tokenizer.model")
    return llama32.Llama3Tokenizer(path)


@pytest.fixture(scope="module")
def qwen_tokenizer(tmp_path_factory):
    """Qwen3Tokenizer with chapter 5's encode signature, as ch05-qwen3.ipynb defines it."""
    qwen3 = import_course_module(f"{FOLDER}/qwen3.py")

    class PretrainingTokenizer(qwen3.Qwen3Tokenizer):
        def encode(self, text, allowed_special=None):
            return super().encode(text, chat_wrapped=False)

    path = write_qwen3_tokenizer_json(tmp_path_factory.mktemp("qwen") / "tokenizer.json")
    return PretrainingTokenizer(path, repo_id="Qwen/Qwen3-0.6B-Base", apply_chat_template=False)


def tiny_llama():
    llama32 = import_course_module(f"{FOLDER}/llama32.py")
    torch.manual_seed(123)
    return llama32.Llama3Model({**llama32.LLAMA32_CONFIG_1B, **TINY_LLAMA_CHANGES})


def train_a_little(chapter, model, tokenizer, text, num_epochs=4):
    """Chapter 5's train_model_simple on a few windows; returns the first and last losses."""
    loader = chapter.create_dataloader_v1(text, tokenizer, batch_size=4, max_length=32,
                                          stride=32, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.1)
    torch.manual_seed(123)
    train_losses, val_losses, tokens_seen = chapter.train_model_simple(
        model, loader, loader, optimizer, "cpu", num_epochs=num_epochs, eval_freq=1,
        eval_iter=2, start_context="Every effort moves you", tokenizer=tokenizer)
    assert tokens_seen[-1] == num_epochs * len(loader) * 4 * 32
    return train_losses[0], train_losses[-1]


def test_the_loader_cuts_windows_of_the_tokenizers_ids(chapter, llama_tokenizer, verdict):
    text = verdict[:3000]
    ids = llama_tokenizer.encode(text)
    loader = chapter.create_dataloader_v1(text, llama_tokenizer, batch_size=2, max_length=16,
                                          stride=8, shuffle=False, drop_last=False)
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [ids[0:16], ids[8:24]]
    assert targets.tolist() == [ids[1:17], ids[9:25]]
    assert len(loader.dataset) == len(range(0, len(ids) - 16, 8))


def test_llama_loss_falls_with_chapter_5s_loop(chapter, llama_tokenizer, verdict, capsys):
    first, last = train_a_little(chapter, tiny_llama(), llama_tokenizer, verdict[:2000])
    assert first > 6.0  # about ln(768) = 6.64 from random weights
    assert last < first - 1.0
    printed = capsys.readouterr().out
    assert printed.count("Every effort moves you") == 4  # one sample per epoch


def test_qwen3_loss_falls_with_chapter_5s_loop(chapter, qwen_tokenizer, verdict, capsys):
    qwen3 = import_course_module(f"{FOLDER}/qwen3.py")
    torch.manual_seed(123)
    model = qwen3.Qwen3Model({**qwen3.QWEN_CONFIG_06_B, **TINY_QWEN3_CHANGES})
    first, last = train_a_little(chapter, model, qwen_tokenizer, verdict[:2000])
    assert first > 5.5  # about ln(512) = 6.24 from random weights
    assert last < first - 1.0
    assert capsys.readouterr().out.count("Every effort moves you") == 4


def test_the_sample_is_cropped_to_the_rope_table(chapter, llama_tokenizer, capsys):
    """generate_and_print_sample reads the context length from the model's cos table."""
    model = tiny_llama()
    assert model.cos.shape[0] == TINY_LLAMA_CHANGES["context_length"]
    start = "Every effort moves you " * 40  # longer than the context once 50 tokens are added
    assert len(llama_tokenizer.encode(start)) + 50 > model.cos.shape[0]
    chapter.generate_and_print_sample(model, llama_tokenizer, "cpu", start)
    assert capsys.readouterr().out.startswith("Every effort moves you")
    assert model.training  # back in training mode
