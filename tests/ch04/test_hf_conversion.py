"""Our GPTModel computes exactly what Hugging Face's GPT-2 computes.

A randomly initialised `transformers.GPT2LMHeadModel` (no download needed) is
converted with ch04's `hf_conversion` module; the converted model must give
the same logits (to 1e-5) and the same greedy continuations. The 124M
configuration is tested at full depth; medium, large and XL keep their width,
heads, vocabulary and context but only 2 blocks, which exercises every weight
shape while keeping the test fast.
"""

import pytest
import torch
from support.course_imports import import_course_module
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

hf_conversion = import_course_module("ch04/01_main-chapter-code/hf_conversion.py")
gpt = import_course_module("ch04/01_main-chapter-code/gpt.py")

# name: (n_embd, n_head, n_layer used here)
SIZES = {
    "124M": (768, 12, 12),
    "355M-2-layers": (1024, 16, 2),
    "774M-2-layers": (1280, 20, 2),
    "1558M-2-layers": (1600, 25, 2),
}
ATOL = 1e-5


def random_hf_gpt2(n_embd, n_head, n_layer, vocab_size=50257, n_positions=1024, seed=0,
                   model_class=GPT2LMHeadModel):
    """A GPT-2 with random weights, every tensor perturbed.

    Hugging Face starts biases at 0 and LayerNorm weights at 1; adding noise
    to every parameter makes each tensor distinct, so a tensor copied to the
    wrong place, or not transposed, changes the output.
    """
    torch.manual_seed(seed)
    config = GPT2Config(
        n_embd=n_embd, n_head=n_head, n_layer=n_layer, n_positions=n_positions,
        vocab_size=vocab_size, bos_token_id=None, eos_token_id=None,
        attn_implementation="eager",  # the textbook attention formula, as a reference
    )
    model = model_class(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    return model


@pytest.fixture(scope="module", params=list(SIZES))
def converted_pair(request):
    hf_model = random_hf_gpt2(*SIZES[request.param])
    return hf_model, hf_conversion.gpt_model_from_hf(hf_model)


def random_ids(batch_size, num_tokens, seed=123):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50257, (batch_size, num_tokens), generator=generator)


@pytest.mark.slow
def test_logits_match_hugging_face(converted_pair):
    hf_model, ours = converted_pair
    ids = random_ids(2, 40)
    with torch.no_grad():
        expected = hf_model(ids).logits
        actual = ours(ids)
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_greedy_generation_matches_hugging_face(converted_pair):
    hf_model, ours = converted_pair
    prompt = random_ids(1, 6, seed=7)
    expected = hf_model.generate(
        prompt, attention_mask=torch.ones_like(prompt),
        max_new_tokens=8, do_sample=False,
    )
    actual = gpt.generate_text_simple(ours, prompt, max_new_tokens=8, context_size=1024)
    assert actual.tolist() == expected.tolist()


def test_full_context_logits_match():
    """Every position up to context_length: position embeddings and the causal mask."""
    hf_model = tiny(n_positions=64)
    ours = hf_conversion.gpt_model_from_hf(hf_model)
    ids = random_ids(2, 64) % 101
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf_model(ids).logits, atol=ATOL, rtol=0)


def test_gpt2_small_config_maps_to_the_chapter_config():
    expected = {**gpt.GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True}
    assert hf_conversion.gpt_config_from_hf(GPT2Config()) == expected
    assert hf_conversion.gpt_config_from_hf(GPT2Config(), drop_rate=0.1)["drop_rate"] == 0.1


@pytest.mark.parametrize("change", [
    {"activation_function": "relu"},
    {"layer_norm_epsilon": 1e-6},
    {"n_inner": 100},
    {"scale_attn_by_inverse_layer_idx": True},
])
def test_configs_our_model_cannot_express_are_refused(change):
    with pytest.raises(ValueError, match="differs from GPTModel"):
        hf_conversion.gpt_config_from_hf(GPT2Config(**change))


def tiny(model_class=GPT2LMHeadModel, n_layer=2, n_positions=16):
    """A few-thousand-parameter GPT-2 for checks that do not need real sizes."""
    return random_hf_gpt2(32, 4, n_layer, vocab_size=101, n_positions=n_positions,
                          model_class=model_class)


def test_output_head_is_a_copy_of_the_token_embeddings():
    hf_model = tiny()
    ours = hf_conversion.gpt_model_from_hf(hf_model)
    wte = hf_model.transformer.wte.weight
    assert torch.equal(ours.tok_emb.weight, wte)
    assert torch.equal(ours.out_head.weight, wte)
    # copies, not views: training ours must not change the Hugging Face model
    assert ours.out_head.weight.data_ptr() != wte.data_ptr()
    assert ours.out_head.weight.data_ptr() != ours.tok_emb.weight.data_ptr()


def test_bare_gpt2model_state_dict_gets_a_tied_head():
    bare = tiny(GPT2Model)
    cfg = hf_conversion.gpt_config_from_hf(bare.config)
    ours = hf_conversion.load_hf_gpt2_weights(gpt.GPTModel(cfg), bare.state_dict()).eval()
    assert torch.equal(ours.out_head.weight, bare.wte.weight)
    ids = random_ids(2, 16) % 101
    with torch.no_grad():
        hidden = bare(ids).last_hidden_state
        torch.testing.assert_close(ours(ids), hidden @ bare.wte.weight.T, atol=ATOL, rtol=0)


def test_wrong_depth_is_an_error():
    cfg = hf_conversion.gpt_config_from_hf(tiny().config)
    deeper = tiny(n_layer=3)
    with pytest.raises(ValueError, match="unexpected"):
        hf_conversion.load_hf_gpt2_weights(gpt.GPTModel(cfg), deeper.state_dict())


def test_wrong_width_names_the_shapes():
    cfg = {**hf_conversion.gpt_config_from_hf(tiny().config), "emb_dim": 64}
    with pytest.raises(RuntimeError, match="size mismatch"):
        hf_conversion.load_hf_gpt2_weights(gpt.GPTModel(cfg), tiny().state_dict())
