"""ch05/08_memory_efficient_weight_loading: peak memory measured in fresh processes."""

import tempfile
from pathlib import Path

import pytest
from support.course_imports import import_course_module
from filelock import FileLock

loading = import_course_module(
    "ch05/08_memory_efficient_weight_loading/memory_efficient_loading.py")

# A 124M-shaped checkpoint takes a while to write; its weights are seeded, so a kept
# copy equals a fresh one.
CHECKPOINTS = Path(tempfile.gettempdir()) / "llms-from-scratch-test-checkpoints" / "gpt2-small"


@pytest.fixture(scope="module")
def gpt2_small_checkpoints():
    config = loading.random_gpt2_config("gpt2-small")
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CHECKPOINTS) + ".lock"):
        paths = loading.write_checkpoints(config, CHECKPOINTS)
    return config, paths


def test_meta_assign_stays_near_the_model_size(gpt2_small_checkpoints):
    config, paths = gpt2_small_checkpoints
    result = loading.measure("meta-assign", config, paths[".pth"])
    assert result["model_bytes"] > 600e6  # really the 124M shape (163M parameters + masks)
    assert result["extra_bytes"] < 1.5 * result["model_bytes"]


def test_the_usual_way_holds_the_weights_twice(gpt2_small_checkpoints):
    """The contrast the notebook explains: well above the efficient path's bound."""
    config, paths = gpt2_small_checkpoints
    result = loading.measure("naive", config, paths[".pth"])
    assert result["extra_bytes"] > 1.7 * result["model_bytes"]


def test_every_approach_loads_the_same_weights(tmp_path):
    import torch

    config = loading.random_gpt2_config("tiny")
    paths = loading.write_checkpoints(config, tmp_path)
    reference = torch.load(paths[".pth"], weights_only=True)
    for name, (load, suffix) in loading.APPROACHES.items():
        if name == "gpu-by-parameter":
            continue
        state = load(config, paths[suffix]).state_dict()
        assert state.keys() == reference.keys(), name
        assert all(torch.equal(state[k], reference[k]) for k in reference), name


def test_existing_checkpoints_are_kept(tmp_path):
    config = loading.random_gpt2_config("tiny")
    first = loading.write_checkpoints(config, tmp_path)
    stamps = {path: path.stat().st_mtime_ns for path in first.values()}
    loading.write_checkpoints(config, tmp_path)
    assert {path: path.stat().st_mtime_ns for path in first.values()} == stamps
    assert not list(tmp_path.glob("*.part"))
