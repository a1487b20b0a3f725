"""OpenAI's GPT-2 in our GPTModel: the same logits as Hugging Face's GPT-2.

A random Hugging Face `GPT2LMHeadModel` is written as an OpenAI release
(TensorFlow checkpoint, OpenAI's names and layout), read back with
gpt_download.py and copied into our model with `load_weights_into_gpt`. If
any weight is misplaced, transposed or split wrongly, the logits differ.
"""

import pytest
import torch
from support.course_imports import import_course_module
from support.openai_gpt2 import (
    OPENAI_HPARAMS,
    openai_variable_shapes,
    random_hf_gpt2,
    write_openai_gpt2_mirror,
)

gpt_generate = import_course_module("ch05/01_main-chapter-code/gpt_generate.py")

SMALL_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 4, "n_layer": 2}


@pytest.fixture(scope="module")
def hf_model():
    return random_hf_gpt2(SMALL_HPARAMS, seed=11)


@pytest.fixture(scope="module")
def release(hf_model, tmp_path_factory):
    """(settings, params) read by gpt_download.py from an OpenAI-format mirror."""
    mirror = write_openai_gpt2_mirror(tmp_path_factory.mktemp("mirror"), "124M",
                                      hf_model=hf_model)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("LLMS_FROM_SCRATCH_MIRROR", str(mirror))
        return gpt_generate.download_and_load_gpt2(
            "124M", tmp_path_factory.mktemp("models"))


def small_model(**overrides):
    cfg = {**gpt_generate.gpt_config_from_hparams(SMALL_HPARAMS), **overrides}
    return gpt_generate.GPTModel(cfg).eval()


def test_openai_variables_of_124m_add_up_to_gpt2_small():
    """Independent fact: GPT-2 small has 124,439,808 parameters in 148 tensors."""
    shapes = openai_variable_shapes(OPENAI_HPARAMS["124M"])
    assert len(shapes) == 148
    assert shapes["model/h11/attn/c_attn/w"] == (1, 768, 2304)
    assert sum(torch.Size(shape).numel() for shape in shapes.values()) == 124_439_808


def test_loaded_model_gives_hugging_face_logits(hf_model, release):
    settings, params = release
    model = gpt_generate.GPTModel(gpt_generate.gpt_config_from_hparams(settings)).eval()
    gpt_generate.load_weights_into_gpt(model, params)

    torch.manual_seed(0)
    token_ids = torch.randint(0, SMALL_HPARAMS["n_vocab"], (2, SMALL_HPARAMS["n_ctx"]))
    with torch.no_grad():
        ours = model(token_ids)
        reference = hf_model(token_ids).logits
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    # the weights are random but not trivial: the logits really vary
    assert reference.std() > 0.1


def test_token_embedding_is_copied_into_the_output_head(release):
    _, params = release
    model = small_model()
    gpt_generate.load_weights_into_gpt(model, params)
    torch.testing.assert_close(model.out_head.weight, model.tok_emb.weight, atol=0, rtol=0)
    assert model.out_head.weight.data_ptr() != model.tok_emb.weight.data_ptr()


def test_shape_mismatch_names_the_parameter_and_both_shapes(release):
    _, params = release
    with pytest.raises(ValueError, match=r"pos_emb\.weight.*\(32, 32\).*\(64, 32\)"):
        gpt_generate.load_weights_into_gpt(small_model(context_length=32), params)


def test_wrong_number_of_blocks_is_reported(release):
    _, params = release
    with pytest.raises(ValueError, match="2 transformer blocks.*3"):
        gpt_generate.load_weights_into_gpt(small_model(n_layers=3), params)


def test_model_without_qkv_bias_is_reported(release):
    _, params = release
    with pytest.raises(ValueError, match="qkv_bias=True"):
        gpt_generate.load_weights_into_gpt(small_model(qkv_bias=False), params)


@pytest.mark.slow
def test_full_size_124m_release_loads_into_gpt2_small(tmp_path, monkeypatch):
    """The random-weight 124M release that notebook tests use fits GPT-2 small."""
    from conftest import openai_release_folder

    folder = openai_release_folder("124M")
    monkeypatch.delenv("LLMS_FROM_SCRATCH_MIRROR", raising=False)
    # the files are all in place already, so nothing is copied or fetched
    settings, params = gpt_generate.download_and_load_gpt2("124M", folder.parent)
    model = gpt_generate.GPTModel(gpt_generate.gpt_config_from_hparams(settings)).eval()
    gpt_generate.load_weights_into_gpt(model, params)

    num_params = sum(p.numel() for p in model.parameters())
    assert num_params == 124_439_808 + 50257 * 768  # out_head is a separate copy of wte
    with torch.no_grad():
        logits = model(torch.tensor([[15496, 11, 314, 716]]))
    assert logits.shape == (1, 4, 50257) and torch.isfinite(logits).all()
