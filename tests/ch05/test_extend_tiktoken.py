"""ch05/09_extending-tokenizers/extend-tiktoken.ipynb: new special tokens, a grown model.

The tokenizer part runs the notebook's own cells and must give the book repository's
token ids; the model part uses the notebook's functions on a small random GPTModel,
whose old tokens' logits must not change when the model grows (while the book
repository's biased head changes them).
"""

import nbformat
import pytest
import torch
from support.course_imports import REPO_ROOT, course_folder_on_path, notebook_definitions

FOLDER = "ch05/09_extending-tokenizers"
NOTEBOOK = "extend-tiktoken.ipynb"
NOTEBOOK_CELLS = nbformat.read(REPO_ROOT / FOLDER / NOTEBOOK, as_version=4).cells
nb = notebook_definitions(f"{FOLDER}/{NOTEBOOK}", ["GPTModel", "GPT_CONFIG_124M"])

# The book repository's outputs (../shared/book-repo-newer-folders.md, section 2.1)
BOOK_BASE_IDS = [15496, 11, 2011, 3791, 30642, 62, 16, 318, 257, 649, 11241, 13, 220, 50256]
BOOK_EXTENDED_IDS = [36674, 2420, 351, 220, 50257, 290, 220, 50258, 13, 220, 50256]
SMALL = {**nb.GPT_CONFIG_124M, "context_length": 64, "emb_dim": 32, "n_heads": 2,
         "n_layers": 2, "qkv_bias": True}


@pytest.fixture(scope="module")
def tokenizer_cells(tmp_path_factory, monkeypatch_module):
    """The namespace after the notebook's cells up to the model section (section 2)."""
    monkeypatch_module.chdir(tmp_path_factory.mktemp("extend-tiktoken"))
    namespace = {}
    with course_folder_on_path(REPO_ROOT / FOLDER):
        for cell in NOTEBOOK_CELLS:
            if cell.cell_type == "markdown" and cell.source.startswith("## 2."):
                break
            if cell.cell_type == "code":
                exec(compile(cell.source, NOTEBOOK, "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_new_tokens_get_the_book_repositorys_ids(tokenizer_cells):
    ns = tokenizer_cells
    assert ns["base_tokenizer"].encode(ns["sample_text"], allowed_special={"<|endoftext|>"}) \
        == BOOK_BASE_IDS
    assert ns["custom_token_ids"] == {"MyNewToken_1": 50257, "MyNewToken_2": 50258}
    assert ns["extended_tokenizer"].n_vocab == 50259
    assert ns["token_ids"] == BOOK_EXTENDED_IDS
    assert ns["extended_tokenizer"].decode(ns["token_ids"]) == \
        "Sample text with MyNewToken_1 and MyNewToken_2. <|endoftext|>"


def small_gpt(seed=123):
    torch.manual_seed(seed)
    return nb.GPTModel(SMALL).eval()


OLD_IDS = torch.tensor([[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 50256]])


def test_growing_keeps_the_old_tokens_logits():
    gpt = small_gpt()
    with torch.no_grad():
        before = gpt(OLD_IDS)
    gpt.tok_emb = nb.extend_embedding(gpt.tok_emb, 2)
    gpt.out_head = nb.extend_output_head(gpt.out_head, 2)
    assert gpt.tok_emb.weight.shape == gpt.out_head.weight.shape == (50259, 32)
    with torch.no_grad():
        after = gpt(OLD_IDS)
        with_new = gpt(torch.tensor([BOOK_EXTENDED_IDS]))
    assert after.shape == (1, OLD_IDS.shape[1], 50259)
    torch.testing.assert_close(after[..., :50257], before, atol=1e-6, rtol=0)
    assert with_new.shape == (1, len(BOOK_EXTENDED_IDS), 50259)

    # The book repository's head: copied rows, plus a random bias on every logit.
    biased = torch.nn.Linear(32, 50259, bias=True)
    with torch.no_grad():
        biased.weight.copy_(gpt.out_head.weight)
    gpt.out_head = biased
    with torch.no_grad():
        assert (gpt(OLD_IDS)[..., :50257] - before).abs().max() > 1e-3
    with pytest.raises(ValueError, match="no bias"):
        nb.extend_output_head(biased, 2)


def test_weight_tying_grows_the_head_with_the_embedding():
    gpt = small_gpt()
    nb.tie_output_head(gpt)
    with torch.no_grad():
        before = gpt(OLD_IDS)
    gpt.tok_emb = nb.extend_embedding(gpt.tok_emb, 2)
    nb.tie_output_head(gpt)
    assert gpt.out_head.weight is gpt.tok_emb.weight
    assert gpt.out_head.out_features == 50259
    with torch.no_grad():
        after = gpt(OLD_IDS)
    torch.testing.assert_close(after[..., :50257], before, atol=1e-6, rtol=0)
