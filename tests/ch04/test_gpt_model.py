"""Chapter 4's building blocks, checked against references and the book's figures."""

import pytest
import torch
import torch.nn as nn
from support.course_imports import import_course_module
from support.helpers import tiny_gpt_config

gpt = import_course_module("ch04/01_main-chapter-code/gpt.py")

# (emb_dim, n_layers, n_heads) -> parameters with a separate output head, qkv_bias=False
GPT2_PARAMETER_COUNTS = {
    "124M": ((768, 12, 12), 163_009_536),
    "355M": ((1024, 24, 16), 406_212_608),
    "774M": ((1280, 36, 20), 838_220_800),
    "1558M": ((1600, 48, 25), 1_637_792_000),
}


def on_meta(module_class, cfg):
    """Build without allocating memory: counts and dtypes only, in milliseconds."""
    with torch.device("meta"):
        return module_class(cfg)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", list(GPT2_PARAMETER_COUNTS))
def test_parameter_counts_of_the_four_gpt2_sizes(size):
    (emb_dim, n_layers, n_heads), expected = GPT2_PARAMETER_COUNTS[size]
    cfg = {**gpt.GPT_CONFIG_124M, "emb_dim": emb_dim, "n_layers": n_layers, "n_heads": n_heads}
    assert count(on_meta(gpt.GPTModel, cfg)) == expected


def test_124m_model_sizes_match_the_book():
    model = on_meta(gpt.GPTModel, gpt.GPT_CONFIG_124M)
    total = count(model)
    assert total == 163_009_536
    assert total - count(model.out_head) == 124_412_160  # with weight tying
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1024**2
    assert f"{size_mb:.2f}" == "621.83"


def test_feed_forward_and_attention_parameter_counts():
    block = on_meta(gpt.TransformerBlock, gpt.GPT_CONFIG_124M)
    assert count(block.ff) == 4_722_432
    assert count(block.att) == 2_360_064


def test_layer_norm_matches_torch():
    torch.manual_seed(0)
    x = 3 * torch.randn(4, 7, 16) + 2
    ln = gpt.LayerNorm(16)
    with torch.no_grad():
        ln.scale.normal_()
        ln.shift.normal_()
    expected = nn.functional.layer_norm(x, (16,), ln.scale, ln.shift, eps=1e-5)
    torch.testing.assert_close(ln(x), expected)


def test_gelu_is_the_tanh_approximation():
    x = torch.linspace(-6, 6, 1001)
    torch.testing.assert_close(gpt.GELU()(x), nn.functional.gelu(x, approximate="tanh"))


def tiny_config():
    return tiny_gpt_config(vocab_size=50, context_length=8, emb_dim=16)


def test_gpt_model_is_causal():
    """Changing a later token must not change the logits of earlier positions."""
    torch.manual_seed(0)
    model = gpt.GPTModel(tiny_config()).eval()
    ids = torch.randint(0, 50, (1, 8))
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % 50
    with torch.no_grad():
        before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_module_creation_order_follows_the_design():
    """The order of creation fixes which random numbers each weight gets (seeded outputs)."""
    model = gpt.GPTModel(tiny_config())
    assert [name for name, _ in model.named_children()] == [
        "tok_emb", "pos_emb", "drop_emb", "trf_blocks", "final_norm", "out_head"]
    block = model.trf_blocks[0]
    assert [name for name, _ in block.named_children()] == [
        "att", "ff", "norm1", "norm2", "drop_shortcut"]
    assert model.out_head.bias is None


class RecordingModel(nn.Module):
    """Stands in for a GPT: remembers input lengths, always prefers token (length % 5)."""

    def __init__(self):
        super().__init__()
        self.seen_lengths = []

    def forward(self, idx):
        self.seen_lengths.append(idx.shape[1])
        logits = torch.zeros(idx.shape[0], idx.shape[1], 5)
        logits[:, -1, idx.shape[1] % 5] = 1.0
        return logits


def test_generate_text_simple_crops_the_context_and_appends_argmax():
    model = RecordingModel()
    prompt = torch.tensor([[1, 2, 3], [4, 0, 1]])
    out = gpt.generate_text_simple(model, prompt, max_new_tokens=6, context_size=4)
    assert model.seen_lengths == [3, 4, 4, 4, 4, 4]
    assert out.shape == (2, 9)
    assert torch.equal(out[:, :3], prompt)
    assert out[0, 3:].tolist() == [3, 4, 4, 4, 4, 4]


def test_generation_past_the_context_length_works_with_the_real_model():
    torch.manual_seed(0)
    model = gpt.GPTModel(tiny_config()).eval()
    out = gpt.generate_text_simple(model, torch.tensor([[1, 2, 3, 4, 5, 6]]),
                                   max_new_tokens=10, context_size=8)
    assert out.shape == (1, 16)
