"""Appendix E: LoRA layers, parameter counts, training, merging, and Hugging Face."""

import copy
import math

import pytest
import torch
from support.course_imports import import_course_module, notebook_definitions

pytestmark = pytest.mark.usefixtures("single_thread_torch")

FOLDER = "appendix-E/01_main-chapter-code"
pc = import_course_module(f"{FOLDER}/previous_chapters.py")
lora = notebook_definitions(
    f"{FOLDER}/appendix-E.ipynb",
    ["LoRALayer", "LinearWithLoRA", "replace_linear_with_lora", "merge_lora"],
)

TINY = {"vocab_size": 64, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": True}


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    model = pc.GPTModel(TINY)
    model.out_head = torch.nn.Linear(TINY["emb_dim"], 2)
    return model.eval()


def freeze_and_wrap(model, rank=4, alpha=8):
    for param in model.parameters():
        param.requires_grad = False
    lora.replace_linear_with_lora(model, rank=rank, alpha=alpha)
    return model


def randomize_lora(model, seed=1):
    """Give every B random values, as training would."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, lora.LoRALayer):
            torch.nn.init.normal_(module.B, std=0.2)


def token_batch(seed=2, batch=3, length=10):
    torch.manual_seed(seed)
    return torch.randint(0, TINY["vocab_size"], (batch, length))


def test_lora_layer_starts_at_zero_and_scales_by_alpha_over_rank():
    torch.manual_seed(0)
    layer = lora.LoRALayer(in_dim=20, out_dim=6, rank=4, alpha=12)
    assert layer.A.shape == (20, 4) and layer.B.shape == (4, 6)
    assert torch.count_nonzero(layer.B) == 0
    # Kaiming-uniform with a = sqrt(5) on an (in_dim, rank) tensor: bound 1/sqrt(rank)
    assert 0 < layer.A.abs().max() <= 1 / math.sqrt(4)
    x = torch.randn(5, 20)
    assert torch.count_nonzero(layer(x)) == 0
    torch.nn.init.normal_(layer.B)
    torch.testing.assert_close(layer(x), 3.0 * (x @ layer.A.detach() @ layer.B.detach()))


def test_wrapping_wraps_every_linear_and_leaves_the_output_unchanged():
    model = tiny_classifier()
    x = token_batch()
    with torch.no_grad():
        before = model(x)
    linear_count = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    freeze_and_wrap(model)
    wrapped = [m for m in model.modules() if isinstance(m, lora.LinearWithLoRA)]
    assert len(wrapped) == linear_count == 6 * TINY["n_layers"] + 1
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_a_few_training_steps_change_only_a_and_b():
    model = freeze_and_wrap(tiny_classifier())
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    lora_names = {name for name, param in model.named_parameters() if param.requires_grad}
    assert lora_names and all(name.endswith(("lora.A", "lora.B")) for name in lora_names)
    assert len(optimizer.param_groups[0]["params"]) == len(list(model.parameters()))

    model.train()
    labels = torch.tensor([0, 1, 1])
    for _ in range(3):
        optimizer.zero_grad()
        pc.calc_loss_batch(token_batch(), labels, model, "cpu").backward()
        optimizer.step()

    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == lora_names  # every A and B moved, nothing else did
    assert len(optimizer.state) == len(lora_names)  # no AdamW state for frozen weights


def test_merged_model_reproduces_the_wrapped_logits():
    model = freeze_and_wrap(tiny_classifier())
    randomize_lora(model)
    merged = lora.merge_lora(copy.deepcopy(model))
    assert not any(isinstance(m, lora.LinearWithLoRA) for m in merged.modules())
    assert sum(p.numel() for p in merged.parameters()) == \
        sum(p.numel() for p in tiny_classifier().parameters())
    x = token_batch()
    with torch.no_grad():
        wrapped_logits, merged_logits = model(x), merged(x)
    assert (wrapped_logits - tiny_classifier()(x)).abs().max() > 1e-2  # the update matters
    torch.testing.assert_close(merged_logits, wrapped_logits, rtol=0, atol=1e-5)


def test_parameter_counts_of_the_124m_classifier():
    config = {**pc.GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True}
    with torch.device("meta"):  # shapes only: no memory, no time
        model = pc.GPTModel(config)
        model.out_head = torch.nn.Linear(768, 2)

    def trainable():
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    assert trainable() == 124_441_346
    for param in model.parameters():
        param.requires_grad = False
    assert trainable() == 0
    lora.replace_linear_with_lora(model, rank=16, alpha=16)
    assert trainable() == 2_666_528


def conv1d_delta(wrapper):
    """The LoRA update in Hugging Face's Conv1D layout [in, out]."""
    return wrapper.lora.scale * (wrapper.lora.A @ wrapper.lora.B)


def test_hugging_face_gpt2_with_the_same_delta_gives_the_same_logits():
    transformers = pytest.importorskip("transformers")
    hf_conversion = import_course_module("ch04/01_main-chapter-code/hf_conversion.py")
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(
        vocab_size=TINY["vocab_size"], n_positions=TINY["context_length"], n_embd=32,
        n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=False,  # a separate output head, like our out_head
    )
    hf_model = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = freeze_and_wrap(hf_conversion.gpt_model_from_hf(hf_model), rank=3, alpha=5)
    randomize_lora(ours)
    # float64, so that rounding cannot hide a wrong delta (our GELU's sqrt(2/pi) is a
    # float32 constant, which alone makes differences of about 1e-7)
    hf_model, ours = hf_model.double(), ours.double()
    x = token_batch(length=TINY["context_length"])
    with torch.no_grad():
        without_delta = hf_model(x).logits

    with torch.no_grad():
        for hf_block, block in zip(hf_model.transformer.h, ours.trf_blocks, strict=True):
            att = block.att
            hf_block.attn.c_attn.weight += torch.cat(
                [conv1d_delta(att.W_query), conv1d_delta(att.W_key), conv1d_delta(att.W_value)],
                dim=1,
            )
            hf_block.attn.c_proj.weight += conv1d_delta(att.out_proj)
            hf_block.mlp.c_fc.weight += conv1d_delta(block.ff.layers[0])
            hf_block.mlp.c_proj.weight += conv1d_delta(block.ff.layers[2])
        hf_model.lm_head.weight += conv1d_delta(ours.out_head).T  # nn.Linear layout
        with_delta = hf_model(x).logits
        assert (with_delta - without_delta).abs().max() > 1e-2  # the delta matters
        torch.testing.assert_close(ours(x), with_delta, rtol=0, atol=1e-6)
