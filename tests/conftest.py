"""Shared fixtures: a mirror folder for offline data, and fake OpenAI checkpoints.

Tests that read the data mirror ($LLMS_FROM_SCRATCH_MIRROR) say so with one name,
`needs_mirror`: the marker `@pytest.mark.needs_mirror("the-verdict.txt", ...)` on a
test or module, or the fixture `needs_mirror` (the mirror's Path) in a fixture.
Without the mirror they are skipped; when the environment variable CI is set
(`.ci/run` sets it) they fail instead, and so does a test whose download raises
`DownloadError`: under CI a wrong URL or sha256 must not pass as "skipped".
"""

import os
import tempfile
from pathlib import Path

import pytest
from filelock import FileLock

MIRROR_ENV_VAR = "LLMS_FROM_SCRATCH_MIRROR"
CI_ENV_VAR = "CI"

# The suite runs two pytest workers (-n 2) on two cores, and each starts scripts and
# notebook kernels that inherit this environment. With more PyTorch threads than cores,
# OpenMP's threads wait on each other and small models run several times slower (a tiny
# gpt_train.py run: 13 s of CPU with one thread against 71 s with two, on a loaded
# machine). One thread per process keeps the workers from competing with themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Random-weight OpenAI checkpoints are slow to write, so they are kept between
# runs here (the weights are seeded, so a kept copy equals a fresh one).
CHECKPOINT_CACHE = Path(tempfile.gettempdir()) / "llms-from-scratch-test-checkpoints"
# Small stand-ins written under a real size's path, for notebooks and scripts whose
# model is too slow to finetune inside the suite: GPT-2's vocabulary and context,
# two narrow layers. "355M-small" is served as gpt-2/models/355M/.
SMALL_STANDINS = {"355M-small": ("355M", {"n_embd": 64, "n_head": 2, "n_layer": 2})}


def running_in_ci():
    """True when CI is set (to anything but an empty string, 0 or false)."""
    return os.environ.get(CI_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def skip_unless_ci(reason):
    """Skip with `reason`; under CI fail with it, since CI must run everything."""
    if running_in_ci():
        pytest.fail(f"{reason} ({CI_ENV_VAR} is set, so this fails instead of skipping)",
                    pytrace=False)
    pytest.skip(reason)


def require_mirror(*files):
    """The mirror folder, holding `files`; otherwise skip (fail under CI)."""
    folder = os.environ.get(MIRROR_ENV_VAR)
    if folder and all((Path(folder) / name).exists() for name in files):
        return Path(folder)
    needed = f"{', '.join(files)} from " if files else ""
    skip_unless_ci(f"needs {needed}the data mirror ${MIRROR_ENV_VAR}")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_mirror(*files): reads these files from $LLMS_FROM_SCRATCH_MIRROR; "
        "skipped without them, failed when CI is set")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs_mirror"):
        require_mirror(*marker.args)


@pytest.fixture(scope="session")
def needs_mirror():
    """The mirror folder, for fixtures that read it (the marker's rule: skip, or fail in CI)."""
    return require_mirror()


def openai_release_folder(model_size, hparams_override=None):
    """A cached OpenAI-format GPT-2 release with random weights, in the real layout.

    `hparams_override` (e.g. {"n_embd": 32, "n_head": 2, "n_layer": 2}) makes a
    smaller model with the same files, for notebooks that only need to run.
    """
    from support.openai_gpt2 import write_openai_gpt2_release

    real_size, standin_override = SMALL_STANDINS.get(model_size, (model_size, None))
    hparams_override = hparams_override or standin_override
    name = model_size + "".join(f"-{key}{value}"
                                for key, value in sorted((hparams_override or {}).items()))
    folder = CHECKPOINT_CACHE / ("gpt-2" if name == model_size else "small") / "models" / name
    done_marker = folder / ".complete"
    CHECKPOINT_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CHECKPOINT_CACHE / f"{name}.lock")):
        if not done_marker.exists():
            write_openai_gpt2_release(folder, model_size=real_size,
                                      hparams_override=hparams_override, seed=0)
            done_marker.touch()
    return folder


@pytest.fixture
def course_mirror(tmp_path):
    """Build a mirror folder: the real mirror's files plus requested fake weights.

    Call the fixture's value with the GPT-2 sizes a test needs, e.g.
    `course_mirror(["124M"])` (or a small stand-in such as "355M-small"), and
    optionally hyperparameters that shrink them (`openai_gpt2_hparams`, see
    `openai_release_folder`); it returns the folder to put in
    $LLMS_FROM_SCRATCH_MIRROR, or None when there is nothing to mirror.
    """

    def build(openai_gpt2_sizes=(), openai_gpt2_hparams=None):
        original = os.environ.get(MIRROR_ENV_VAR)
        if not original and not openai_gpt2_sizes:
            return None
        mirror = tmp_path / "mirror"
        mirror.mkdir(exist_ok=True)
        if original:
            for entry in Path(original).iterdir():
                (mirror / entry.name).symlink_to(entry.resolve())
        for size in openai_gpt2_sizes:
            target = mirror / "gpt-2" / "models" / SMALL_STANDINS.get(size, (size,))[0]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(openai_release_folder(size, openai_gpt2_hparams),
                              target_is_directory=True)
        return mirror

    return build


@pytest.fixture
def single_thread_torch():
    """Run a test's PyTorch ops on one thread, then restore the thread count.

    Tiny models spend more time handing work between threads than computing,
    and on a busy machine the hand-offs wait for a free core: one thread is faster.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Without a mirror, a test whose data cannot be downloaded is skipped, not failed.

    On a machine that reaches only PyPI, the-verdict.txt and the other public files
    cannot be fetched; such tests then say what they need instead of erroring.
    Under CI the error stands: there it means a wrong URL, sha256 or mirror.
    """
    outcome = yield
    report = outcome.get_result()
    excinfo = call.excinfo
    if (excinfo is not None and not os.environ.get(MIRROR_ENV_VAR) and not running_in_ci()
            and excinfo.type.__name__ == "DownloadError"):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: needs network access or {MIRROR_ENV_VAR} "
                           "(its data could not be downloaded)")
