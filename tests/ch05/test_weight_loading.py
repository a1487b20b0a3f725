"""ch05/02_alternative_weight_loading: every route gives the Hugging Face model's logits.

The reference is a random-weight `transformers` GPT-2. Chapter 5's tests prove that the
TensorFlow route reproduces such a model's logits, so a route that reproduces them too
generates the same text as chapter 5 for the same weights.
"""

import pytest
import torch
from support.course_imports import import_course_module
from support.fake_hub import fake_hub_cache
from support.openai_gpt2 import HUB_REPOS, TINY_GPT2_HPARAMS, random_hf_gpt2

FOLDER = "ch05/02_alternative_weight_loading"


@pytest.fixture(scope="module")
def chapter():
    return import_course_module(f"{FOLDER}/previous_chapters.py")


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A Hugging Face cache holding what the hub serves, and the reference model.

    The tests pass the cache and `local_files_only=True` explicitly: environment
    variables such as HF_HUB_OFFLINE are read when huggingface_hub is imported,
    which in a test session has happened long before.
    """
    cache = fake_hub_cache(tmp_path_factory.mktemp("hub-cache"), HUB_REPOS)
    return cache, random_hf_gpt2(TINY_GPT2_HPARAMS)  # the seeded weights the hub files hold


@pytest.fixture(scope="module")
def fake_hub(hub_cache):
    return hub_cache[1]


def from_cache(hub_cache, repo_id, filename):
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id, filename, cache_dir=hub_cache[0], local_files_only=True)


@pytest.fixture(scope="module")
def token_ids():
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, TINY_GPT2_HPARAMS["n_vocab"], (2, 12), generator=generator)


def hf_logits(hf_model, token_ids):
    with torch.no_grad():
        return hf_model(token_ids).logits


def our_logits(model, token_ids):
    with torch.no_grad():
        return model.eval()(token_ids)


def tiny_config(chapter, hf_model):
    return chapter.gpt_config_from_hf(hf_model.config)


def test_transformers_route(chapter, hub_cache, fake_hub, token_ids):
    from transformers import GPT2Model

    hub_model = GPT2Model.from_pretrained("openai-community/gpt2", cache_dir=hub_cache[0],
                                          local_files_only=True)
    model = chapter.GPTModel(tiny_config(chapter, fake_hub))
    chapter.load_hf_gpt2_weights(model, hub_model.state_dict())
    torch.testing.assert_close(our_logits(model, token_ids), hf_logits(fake_hub, token_ids),
                               atol=1e-5, rtol=0)


def test_safetensors_route(chapter, hub_cache, fake_hub, token_ids):
    from safetensors.torch import load_file

    tensors = load_file(from_cache(hub_cache, "openai-community/gpt2", "model.safetensors"))
    assert not any(name.startswith("transformer.") for name in tensors)  # the hub's names
    model = chapter.GPTModel(tiny_config(chapter, fake_hub))
    chapter.load_hf_gpt2_weights(model, tensors)
    torch.testing.assert_close(our_logits(model, token_ids), hf_logits(fake_hub, token_ids),
                               atol=1e-5, rtol=0)


def test_pytorch_state_dict_route(chapter, hub_cache, fake_hub, token_ids):
    path = from_cache(hub_cache, "rasbt/gpt2-from-scratch-pytorch", "gpt2-small-124M.pth")
    model = chapter.GPTModel(tiny_config(chapter, fake_hub))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    torch.testing.assert_close(our_logits(model, token_ids), hf_logits(fake_hub, token_ids),
                               atol=1e-5, rtol=0)


def test_missing_tensor_is_named(chapter, fake_hub):
    state = {k: v for k, v in fake_hub.state_dict().items() if k != "transformer.h.1.ln_2.bias"}
    model = chapter.GPTModel(tiny_config(chapter, fake_hub))
    with pytest.raises(ValueError, match=r"h\.1\.ln_2\.bias"):
        chapter.load_hf_gpt2_weights(model, state)


def test_wrong_shape_is_named(chapter, fake_hub):
    wider = {**tiny_config(chapter, fake_hub), "emb_dim": 64}
    with pytest.raises(RuntimeError, match=r"size mismatch for tok_emb\.weight"):
        chapter.load_hf_gpt2_weights(chapter.GPTModel(wider), fake_hub.state_dict())
