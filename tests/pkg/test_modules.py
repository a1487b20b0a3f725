"""Every module of the package imports, and its main classes run on tiny configurations.

The package's chapter modules are copies of the chapters' code (tools/copy_forward.py
checks that); these tests check that the copies work as a package: relative
imports, the names and signatures of the book's package, and the classes that
live only here (`PyTorchMultiHeadAttention`, the `...Fast` models) against the
chapter classes they replace: same weights, same outputs.
"""

import importlib

import pandas as pd
import pytest
import torch
from support.course_imports import REPO_ROOT

PACKAGE = REPO_ROOT / "pkg" / "llms_from_scratch"
# Every module of the package, from its files, so a new module is tested too.
ALL_MODULES = sorted(".".join(path.relative_to(PACKAGE).with_suffix("").parts)
                     for path in PACKAGE.rglob("*.py") if path.name != "__init__.py")

TINY_GPT = {"vocab_size": 97, "context_length": 24, "emb_dim": 32, "n_heads": 4,
            "n_layers": 2, "drop_rate": 0.0, "qkv_bias": True}
TINY_LLAMA = {"vocab_size": 101, "context_length": 32, "emb_dim": 32, "n_heads": 4,
              "n_layers": 2, "hidden_dim": 64, "n_kv_groups": 2, "rope_base": 500_000.0,
              "dtype": torch.float64, "rope_freq": {"factor": 32.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0,
                                                    "original_context_length": 8}}


def test_every_book_module_is_there():
    book_modules = {"ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "appendix_a", "appendix_d",
                    "appendix_e", "generate", "utils", "llama3", "qwen3", "kv_cache.utils",
                    "kv_cache.generate", "kv_cache.gpt2", "kv_cache.llama3", "kv_cache.qwen3",
                    "kv_cache_batched.utils", "kv_cache_batched.generate",
                    "kv_cache_batched.qwen3"}
    assert book_modules <= set(ALL_MODULES)


@pytest.mark.parametrize("name", ALL_MODULES)
def test_module_imports(name):
    importlib.import_module(f"llms_from_scratch.{name}")


def test_chapter_2_loader_gives_shifted_windows():
    from llms_from_scratch.ch02 import create_dataloader_v1
    from llms_from_scratch.downloads import cache_gpt2_tokenizer_files

    cache_gpt2_tokenizer_files()
    text = "In the heart of the city stood the old library, a relic from a bygone era. " * 4
    loader = create_dataloader_v1(text, batch_size=2, max_length=8, stride=4, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.shape == targets.shape == (2, 8)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    assert torch.equal(inputs[1, :4], inputs[0, 4:])  # stride 4


def test_pytorch_multihead_attention_equals_chapter_3s():
    from llms_from_scratch.ch03 import MultiHeadAttention, PyTorchMultiHeadAttention

    torch.manual_seed(0)
    chapter = MultiHeadAttention(16, 16, context_length=10, dropout=0.0, num_heads=4,
                                 qkv_bias=True).double()
    fast = PyTorchMultiHeadAttention(16, 16, num_heads=4, qkv_bias=True).double()
    with torch.no_grad():
        fast.qkv.weight.copy_(torch.cat([chapter.W_query.weight, chapter.W_key.weight,
                                         chapter.W_value.weight]))
        fast.qkv.bias.copy_(torch.cat([chapter.W_query.bias, chapter.W_key.bias,
                                       chapter.W_value.bias]))
        fast.proj.load_state_dict(chapter.out_proj.state_dict())
    x = torch.randn(3, 10, 16, dtype=torch.float64)
    torch.testing.assert_close(fast(x), chapter(x))


def test_fast_gpt_gives_the_chapter_models_logits():
    from llms_from_scratch.ch04 import GPTModel, GPTModelFast, gpt_state_dict_to_fast

    torch.manual_seed(1)
    model = GPTModel(TINY_GPT).double().eval()
    fast = GPTModelFast(TINY_GPT).double().eval()
    fast.load_state_dict(gpt_state_dict_to_fast(model.state_dict()))  # strict: every key
    ids = torch.randint(0, TINY_GPT["vocab_size"], (2, TINY_GPT["context_length"]))
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), model(ids))


def test_chapter_5_generate_loss_and_assign():
    from llms_from_scratch.ch04 import GPTModel
    from llms_from_scratch.ch05 import assign, calc_loss_batch, generate

    torch.manual_seed(2)
    model = GPTModel(TINY_GPT).eval()
    ids = torch.randint(0, TINY_GPT["vocab_size"], (2, 6))
    out = generate(model, ids, max_new_tokens=4, context_size=TINY_GPT["context_length"])
    assert out.shape == (2, 10) and torch.equal(out[:, :6], ids)
    loss = calc_loss_batch(ids[:, :-1], ids[:, 1:], model, "cpu")
    assert 3.0 < loss.item() < 6.0  # about ln(97) = 4.6 for random weights

    new = assign(model.pos_emb.weight, torch.zeros_like(model.pos_emb.weight).numpy())
    assert isinstance(new, torch.nn.Parameter) and not new.any()
    with pytest.raises(ValueError, match="Shape mismatch"):
        assign(model.pos_emb.weight, torch.zeros(3, 3).numpy())


def test_chapter_6_classifies_and_chapter_7_collates(tmp_path):
    from llms_from_scratch.ch04 import GPTModel
    from llms_from_scratch.ch06 import SpamDataset, calc_accuracy_loader, classify_review
    from llms_from_scratch.ch07 import custom_collate_fn, format_input

    class Tokenizer:  # ids from characters: enough for shapes and padding
        def encode(self, text):
            return [ord(c) % 90 + 1 for c in text]

    csv = tmp_path / "train.csv"
    pd.DataFrame({"Label": [0, 1], "Text": ["hi there", "win money now"]}).to_csv(csv,
                                                                                 index=False)
    dataset = SpamDataset(csv, Tokenizer(), pad_token_id=0)
    assert dataset.max_length == len("win money now")

    torch.manual_seed(3)
    model = GPTModel(TINY_GPT)
    model.out_head = torch.nn.Linear(TINY_GPT["emb_dim"], 2)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    assert 0.0 <= calc_accuracy_loader(loader, model, "cpu") <= 1.0
    assert classify_review("hello", model, Tokenizer(), "cpu", max_length=8,
                           pad_token_id=0) in ("spam", "not spam")

    inputs, targets = custom_collate_fn([[1, 2, 3], [4, 5]], pad_token_id=0)
    assert inputs.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert targets.tolist() == [[2, 3, 0], [5, 0, -100]]
    assert "### Instruction:\nSay hi" in format_input({"instruction": "Say hi", "input": ""})


def test_appendices_run():
    from llms_from_scratch.appendix_a import NeuralNetwork, ToyDataset
    from llms_from_scratch.appendix_d import find_highest_gradient
    from llms_from_scratch.appendix_e import LinearWithLoRA, replace_linear_with_lora

    torch.manual_seed(4)
    network = NeuralNetwork(2, 2)
    dataset = ToyDataset(torch.randn(5, 2), torch.tensor([0, 1, 0, 1, 1]))
    features, label = dataset[0]
    assert network(features[None]).shape == (1, 2) and label in (0, 1)

    network(torch.randn(4, 2)).sum().backward()
    largest = max(p.grad.abs().max() for p in network.parameters())
    assert find_highest_gradient(network) == largest

    before = network(torch.randn(4, 2))
    replace_linear_with_lora(network, rank=2, alpha=4)
    assert sum(isinstance(m, LinearWithLoRA) for m in network.modules()) == 3
    torch.manual_seed(5)
    assert network(torch.randn(4, 2)).shape == before.shape  # B starts at zero


def test_trim_input_tensor_leaves_room_for_new_tokens():
    from llms_from_scratch.generate import trim_input_tensor

    ids = torch.arange(10)[None]
    assert trim_input_tensor(ids, context_len=8, max_new_tokens=3).tolist() == [[5, 6, 7, 8, 9]]
    assert trim_input_tensor(ids, context_len=8, max_new_tokens=7).tolist() == [[9]]
    with pytest.raises(ValueError, match="max_new_tokens"):
        trim_input_tensor(ids, context_len=8, max_new_tokens=8)


def test_import_definitions_from_notebook_gives_the_notebooks_classes():
    from llms_from_scratch.ch03 import MultiHeadAttention
    from llms_from_scratch.utils import import_definitions_from_notebook

    folder = REPO_ROOT / "ch03" / "01_main-chapter-code"
    notebook = import_definitions_from_notebook(folder, "multihead-attention.ipynb")
    assert notebook.__name__ == "multihead_attention"
    torch.manual_seed(6)
    theirs = notebook.MultiHeadAttention(8, 8, 6, 0.0, num_heads=2)
    ours = MultiHeadAttention(8, 8, 6, 0.0, num_heads=2)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 8)
    torch.testing.assert_close(ours(x), theirs(x))
    with pytest.raises(FileNotFoundError):
        import_definitions_from_notebook(folder, "no-such-notebook.ipynb")


def test_fast_llama_gives_the_chapter_models_logits():
    from llms_from_scratch.llama3 import Llama3Model, Llama3ModelFast, clean_text

    torch.manual_seed(7)
    model = Llama3Model(TINY_LLAMA).eval()
    fast = Llama3ModelFast(TINY_LLAMA).eval()
    fast.load_state_dict(model.state_dict())
    ids = torch.randint(0, TINY_LLAMA["vocab_size"], (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), model(ids))
    assert clean_text("<|start_header_id|>assistant<|end_header_id|>\n\n Hi! ") == "Hi!"


def test_book_package_names_for_the_llama_helpers():
    from llms_from_scratch.llama3 import assign, compute_rope_params, precompute_rope_params

    cos, sin = compute_rope_params(8, context_length=6, dtype=torch.bfloat16)
    assert cos.dtype == sin.dtype == torch.bfloat16
    torch.testing.assert_close(cos.float(), precompute_rope_params(8, context_length=6)[0],
                               atol=1e-2, rtol=0)
    weight = torch.nn.Linear(3, 2).weight
    assert assign(weight, torch.ones(2, 3)).sum() == 6
    with pytest.raises(ValueError, match="'layers.0'"):
        assign(weight, torch.ones(3, 2), "layers.0")
