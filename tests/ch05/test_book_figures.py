"""The figures the book prints in chapter 5, reproduced with our code.

They were measured with the book's own code on a 2-core CPU with torch 2.13
(seed 123). Matching them checks that the data split, the loaders, the model,
the loss and the training step follow the book exactly, down to drawing random
numbers in the book's order: each nn.Linear (weight, then bias) and nn.Embedding
when it is created, dropout when it runs, a shuffling DataLoader when each epoch
starts.
"""


import pytest
import tiktoken
import torch
from support.course_imports import import_course_module

ch05 = import_course_module("ch05/01_main-chapter-code/gpt_train.py")
ch05_utils = import_course_module("ch05/01_main-chapter-code/gpt_utils.py")
pc = import_course_module("ch05/01_main-chapter-code/previous_chapters.py")

pytestmark = pytest.mark.needs_mirror("the-verdict.txt")

BOOK_CONFIG = {**pc.GPT_CONFIG_124M, "context_length": 256}


@pytest.fixture(scope="module")
def tokenizer():
    ch05.cache_gpt2_tokenizer_files()
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def loaders(tmp_path_factory):
    path = ch05.download_file(ch05_utils.THE_VERDICT_URL,
                              tmp_path_factory.mktemp("data") / "the-verdict.txt",
                              sha256=ch05_utils.THE_VERDICT_SHA256)
    text = path.read_text(encoding="utf-8")
    split_idx = int(0.90 * len(text))
    torch.manual_seed(123)
    train_loader = pc.create_dataloader_v1(text[:split_idx], batch_size=2, max_length=256,
                                           stride=256, drop_last=True, shuffle=True)
    val_loader = pc.create_dataloader_v1(text[split_idx:], batch_size=2, max_length=256,
                                         stride=256, drop_last=False, shuffle=False)
    return train_loader, val_loader


@pytest.fixture(scope="module")
def untrained_model():
    torch.manual_seed(123)
    model = pc.GPTModel(BOOK_CONFIG)
    model.eval()
    return model


def test_loader_sizes_and_token_counts(loaders):
    train_loader, val_loader = loaders
    assert (len(train_loader.dataset), len(train_loader)) == (18, 9)
    assert (len(val_loader.dataset), len(val_loader)) == (2, 1)
    assert sum(x.numel() for x, _ in train_loader) == 4_608
    assert sum(x.numel() for x, _ in val_loader) == 512


@pytest.mark.slow
def test_untrained_greedy_continuation(untrained_model, tokenizer):
    token_ids = pc.generate_text_simple(
        untrained_model, ch05_utils.text_to_token_ids("Every effort moves you", tokenizer),
        max_new_tokens=10, context_size=256,
    )
    assert ch05_utils.token_ids_to_text(token_ids, tokenizer) == (
        "Every effort moves you rentingetic wasnم refres RexMeCHicular stren"
    )


@pytest.mark.slow
def test_toy_cross_entropy(untrained_model):
    inputs = torch.tensor([[16833, 3626, 6100], [40, 1107, 588]])
    targets = torch.tensor([[3626, 6100, 345], [1107, 588, 11311]])
    with torch.no_grad():
        loss = ch05_utils.calc_loss_batch(inputs, targets, untrained_model, "cpu")
    assert loss.item() == pytest.approx(10.7940, abs=1e-4)


@pytest.mark.slow
def test_untrained_whole_loader_losses(untrained_model, loaders):
    train_loader, val_loader = loaders
    torch.manual_seed(123)  # the book seeds before the pass (the loader shuffles)
    with torch.no_grad():
        train_loss = ch05_utils.calc_loss_loader(train_loader, untrained_model, "cpu")
        val_loss = ch05_utils.calc_loss_loader(val_loader, untrained_model, "cpu")
    assert train_loss == pytest.approx(10.98758, abs=1e-4)
    assert val_loss == pytest.approx(10.98110, abs=1e-4)


@pytest.mark.slow
def test_first_training_step_of_the_book_run(loaders):
    """Step 0 of the book's run prints train 9.781, val 9.933.

    `train_model_simple` evaluates right after its first optimizer step; we
    take that step by hand (same order of random draws: epoch iterator,
    dropout, then the evaluation's own iterator) to keep the 124M test short.
    test_training.py checks on a small model that the loop does the same.
    """
    train_loader, val_loader = loaders
    torch.manual_seed(123)
    model = pc.GPTModel(BOOK_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)

    model.train()
    input_batch, target_batch = next(iter(train_loader))
    optimizer.zero_grad()
    ch05_utils.calc_loss_batch(input_batch, target_batch, model, "cpu").backward()
    optimizer.step()
    train_loss, val_loss = ch05_utils.evaluate_model(model, train_loader, val_loader, "cpu",
                                               eval_iter=5)
    assert round(train_loss, 3) == 9.781
    assert round(val_loss, 3) == 9.933


def test_top_k_toy_example():
    next_token_logits = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])
    top_logits, top_pos = torch.topk(next_token_logits, 3)
    assert top_pos.tolist() == [3, 7, 0]
    masked = torch.where(next_token_logits < top_logits[-1], -torch.inf, next_token_logits)
    probas = torch.softmax(masked, dim=0)
    kept = {i: round(p, 4) for i, p in enumerate(probas.tolist()) if p > 0}
    assert kept == {3: 0.5775, 7: 0.3610, 0: 0.0615}
