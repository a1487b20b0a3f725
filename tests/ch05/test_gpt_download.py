"""gpt_download.py: getting OpenAI's seven files and reading the checkpoint.

The releases are written by `openai_gpt2` in OpenAI's real format (random
weights), served through a mirror folder, as CI serves the course's data.
"""

import sys

import numpy as np
import pytest
from support.course_imports import import_course_module
from support.openai_gpt2 import random_openai_weights, write_openai_gpt2_mirror

gpt_download = import_course_module("ch05/01_main-chapter-code/gpt_download.py")

SMALL_HPARAMS = {"n_vocab": 50257, "n_ctx": 64, "n_embd": 32, "n_head": 4, "n_layer": 2}
MIRROR_ENV_VAR = "LLMS_FROM_SCRATCH_MIRROR"


def cut_off_network(monkeypatch):
    """Send every HTTP(S) request to a closed local port: fails at once, offline or not."""
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def small_mirror(tmp_path_factory):
    """A mirror holding a small "124M" release with seeded random weights."""
    mirror = tmp_path_factory.mktemp("mirror")
    return write_openai_gpt2_mirror(mirror, "124M", hparams_override=SMALL_HPARAMS, seed=3)


def test_unknown_size_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="124M, 355M, 774M, 1558M"):
        gpt_download.download_and_load_gpt2("125M", tmp_path)


def test_no_network_and_no_mirror_names_the_file_and_the_mirror_variable(
        tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV_VAR, raising=False)
    cut_off_network(monkeypatch)
    with pytest.raises(Exception) as excinfo:
        gpt_download.download_and_load_gpt2("124M", tmp_path / "models")
    assert type(excinfo.value).__name__ == "DownloadError"
    message = str(excinfo.value)
    assert "https://openaipublic.blob.core.windows.net/gpt-2/models/124M/checkpoint" in message
    assert MIRROR_ENV_VAR in message
    assert not (tmp_path / "models" / "124M" / "checkpoint").exists()


def test_reads_openai_variables_into_the_nested_dictionary(small_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV_VAR, str(small_mirror))
    settings, params = gpt_download.download_and_load_gpt2("124M", tmp_path / "models")

    assert settings == SMALL_HPARAMS
    assert sorted(p.name for p in (tmp_path / "models" / "124M").iterdir()) == sorted(
        gpt_download.GPT2_FILES)
    written = random_openai_weights(SMALL_HPARAMS, seed=3)
    assert set(params) == {"wte", "wpe", "g", "b", "blocks"}
    np.testing.assert_array_equal(params["wte"], written["model/wte"])
    np.testing.assert_array_equal(params["g"], written["model/ln_f/g"])
    assert len(params["blocks"]) == 2
    block = params["blocks"][1]
    assert set(block) == {"attn", "mlp", "ln_1", "ln_2"}
    # the 1x1-convolution axis is gone: [1, 32, 96] -> [32, 96]
    np.testing.assert_array_equal(block["attn"]["c_attn"]["w"],
                                  written["model/h1/attn/c_attn/w"][0])
    np.testing.assert_array_equal(block["mlp"]["c_proj"]["b"], written["model/h1/mlp/c_proj/b"])
    np.testing.assert_array_equal(block["ln_2"]["b"], written["model/h1/ln_2/b"])


def test_files_already_present_are_not_fetched_again(small_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV_VAR, str(small_mirror))
    gpt_download.download_and_load_gpt2("124M", tmp_path)
    monkeypatch.delenv(MIRROR_ENV_VAR)
    cut_off_network(monkeypatch)
    settings, _ = gpt_download.download_and_load_gpt2("124M", tmp_path)
    assert settings["n_embd"] == 32


def test_a_corrupt_tokenizer_file_is_rejected(small_mirror, tmp_path, monkeypatch):
    """encoder.json has a known sha256: a damaged copy must not be accepted."""
    mirror = tmp_path / "mirror"
    release = mirror / "gpt-2" / "models" / "124M"
    release.mkdir(parents=True)
    for source in (small_mirror / "gpt-2" / "models" / "124M").iterdir():
        (release / source.name).symlink_to(source)
    (release / "encoder.json").unlink()
    (release / "encoder.json").write_text("{}")
    monkeypatch.setenv(MIRROR_ENV_VAR, str(mirror))
    cut_off_network(monkeypatch)

    with pytest.raises(Exception, match="sha256 mismatch"):
        gpt_download.download_and_load_gpt2("124M", tmp_path / "models")
    assert not (tmp_path / "models" / "124M" / "encoder.json").exists()


def test_missing_tensorflow_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(ImportError, match="pip install tensorflow"):
        gpt_download.import_tensorflow()


def copy_release(source_mirror, mirror):
    """A mirror of symlinks to `source_mirror`'s release, whose files a test can replace."""
    release = mirror / "gpt-2" / "models" / "124M"
    release.mkdir(parents=True)
    for source in (source_mirror / "gpt-2" / "models" / "124M").iterdir():
        (release / source.name).symlink_to(source)
    return release


HTML_PAGE = "<!DOCTYPE html>\n<html><body><h1>503 Service Unavailable</h1></body></html>\n"


@pytest.mark.parametrize("filename, damage", [
    ("model.ckpt.index", lambda path: path.write_text(HTML_PAGE)),
    ("hparams.json", lambda path: path.write_text('{"n_vocab": 50257')),
    ("model.ckpt.data-00000-of-00001", lambda path: path.write_bytes(path.read_bytes()[:999])),
], ids=["html-page", "cut-json", "truncated-weights"])
def test_a_damaged_file_already_present_is_removed_and_fetched_again(
        small_mirror, tmp_path, monkeypatch, capsys, filename, damage):
    monkeypatch.setenv(MIRROR_ENV_VAR, str(small_mirror))
    models = tmp_path / "models"
    gpt_download.download_and_load_gpt2("124M", models)
    capsys.readouterr()
    damage(models / "124M" / filename)

    settings, params = gpt_download.download_and_load_gpt2("124M", models)
    assert settings == SMALL_HPARAMS
    expected_wte = random_openai_weights(SMALL_HPARAMS, seed=3)["model/wte"]
    np.testing.assert_array_equal(params["wte"], expected_wte)
    note = capsys.readouterr().out
    assert f"{filename} was damaged (" in note
    assert "has been removed; downloading it again" in note


@pytest.mark.parametrize("filename, damage, reason", [
    ("model.ckpt.index", lambda path: path.write_text(HTML_PAGE), "HTML"),
    ("model.ckpt.data-00000-of-00001",
     lambda path: path.write_bytes(path.read_bytes()[:999]), "truncated"),
], ids=["html-page", "truncated-weights"])
def test_a_damaged_file_in_the_mirror_is_removed_and_named(
        small_mirror, tmp_path, monkeypatch, filename, damage, reason):
    release = copy_release(small_mirror, tmp_path / "mirror")
    damaged = release / filename
    content = damaged.read_bytes()
    damaged.unlink()  # a file of its own instead of the link, then damaged
    damaged.write_bytes(content)
    damage(damaged)
    monkeypatch.setenv(MIRROR_ENV_VAR, str(tmp_path / "mirror"))
    cut_off_network(monkeypatch)

    with pytest.raises(gpt_download.DamagedFileError) as excinfo:
        gpt_download.download_and_load_gpt2("124M", tmp_path / "models")
    message = str(excinfo.value)
    assert filename in message and reason in message and "removed" in message
    assert not (tmp_path / "models" / "124M" / filename).exists()
