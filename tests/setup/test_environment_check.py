"""setup/python_environment_check.py: parsing requirement files and judging installs.

Every parsing and version test runs twice: with `packaging` (the normal case)
and with the script's own small fallback parser (an environment without it).
"""

import importlib.metadata
import textwrap

import pytest
from support.course_imports import REPO_ROOT, import_course_module
from support.helpers import run_script

SCRIPT = "setup/python_environment_check.py"
envcheck = import_course_module(SCRIPT)

PYTEST_VERSION = importlib.metadata.version("pytest")
NOT_INSTALLED = "llms-from-scratch-no-such-package"


@pytest.fixture(params=["packaging", "fallback"])
def parser_kind(request, monkeypatch):
    if request.param == "fallback":
        monkeypatch.setattr(envcheck, "Requirement", None)
    return request.param


def write(tmp_path, text, name="requirements.txt"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_default_file_is_the_repository_requirements():
    assert envcheck.DEFAULT_REQUIREMENTS == REPO_ROOT / "requirements.txt"


def test_lines_skip_comments_blanks_and_pip_options_and_follow_includes(tmp_path):
    write(tmp_path, "numpy>=1.26  # from the included file\n", name="base.txt")
    path = write(
        tmp_path,
        """\
        # a full-line comment
        --index-url https://example.org/simple

        -r base.txt
        torch>=2.2,<3    # an inline comment
        pkg @ https://example.org/pkg.zip#sha256=abc
        """,
    )

    assert envcheck.requirement_lines(path) == [
        "numpy>=1.26",
        "torch>=2.2,<3",
        "pkg @ https://example.org/pkg.zip#sha256=abc",  # a URL fragment is not a comment
    ]


def test_parses_name_extras_and_specifiers(parser_kind):
    wanted = envcheck.parse_requirement("tqdm[notebook] >= 4.66, <5")

    assert wanted.name == "tqdm"
    assert set(wanted.specifier.split(",")) == {">=4.66", "<5"}
    assert (wanted.marker, wanted.applies) == ("", True)


def test_unreadable_requirement_raises(parser_kind):
    with pytest.raises(ValueError, match="cannot read requirement"):
        envcheck.parse_requirement(">=1.0 without a name")


def test_markers_are_evaluated_with_packaging():
    here = envcheck.parse_requirement('pytest>=1; python_version >= "3"')
    elsewhere = envcheck.parse_requirement('pytest>=1; python_version < "3"')

    assert here.applies is True
    assert elsewhere.applies is False
    assert envcheck.check_requirement(elsewhere).status == "SKIPPED"
    assert 'python_version < "3"' in envcheck.format_result(envcheck.check_requirement(elsewhere))


def test_fallback_reports_markers_it_cannot_evaluate(monkeypatch):
    monkeypatch.setattr(envcheck, "Requirement", None)
    wanted = envcheck.parse_requirement('tensorflow>=2.16; sys_platform != "linux"')

    result = envcheck.check_requirement(wanted)

    assert wanted.applies is None
    assert result.status == "SKIPPED" and not result.is_problem
    assert "install `packaging`" in envcheck.format_result(result)


@pytest.mark.parametrize(
    "version, specifier, allowed",
    [
        ("2.13.0+cpu", ">=2.2,<3", True),  # local build tags do not matter
        ("3.0.0", ">=2.2,<3", False),
        ("2.1.9", ">=2.2", False),
        ("2.2", ">=2.2.0", True),
        ("1.26.4", "==1.26.4", True),
        ("2.0", "!=2.0.0", False),
        ("2.5.1", "==2.*", True),
        ("3.0", "==2.*", False),
        ("1.4.5", "~=1.4.2", True),
        ("1.5.0", "~=1.4.2", False),
        ("1.4.1", "~=1.4.2", False),
        ("0.9", "", True),
    ],
)
def test_version_comparison(parser_kind, version, specifier, allowed):
    assert envcheck.version_allowed(version, specifier) is allowed


def test_ok_missing_and_wrong_version(parser_kind, tmp_path):
    path = write(
        tmp_path,
        f"""\
        pytest>=1.0
        {NOT_INSTALLED}>=1.0
        pytest<1.0
        """,
    )

    results = envcheck.check_requirements_file(path)

    assert [(r.wanted.name, r.status) for r in results] == [
        ("pytest", "OK"),
        (NOT_INSTALLED, "MISSING"),
        ("pytest", "WRONG"),
    ]
    assert results[0].installed == results[2].installed == PYTEST_VERSION
    assert [r.is_problem for r in results] == [False, True, True]


def test_report_line_shows_status_name_version_and_wish():
    result = envcheck.check_requirement(envcheck.parse_requirement("pytest<1.0"))

    line = envcheck.format_result(result)

    assert line.startswith("[WRONG]")
    assert f"pytest {PYTEST_VERSION}" in line
    assert "wanted <1.0" in line


def run_check(*args):
    return run_script(SCRIPT, *args, cwd=REPO_ROOT, timeout=60)


def test_script_exits_zero_when_everything_is_installed(tmp_path):
    path = write(tmp_path, "pytest>=1.0\n")

    process = run_check(path)

    assert process.returncode == 0, process.stdout + process.stderr
    assert f"[OK]       pytest {PYTEST_VERSION}" in process.stdout
    assert "Everything is in place." in process.stdout


def test_script_exits_nonzero_and_names_each_problem(tmp_path):
    path = write(tmp_path, f"{NOT_INSTALLED}\npytest<1.0\n")

    process = run_check(path)

    assert process.returncode == 1
    assert f"[MISSING]  {NOT_INSTALLED}" in process.stdout
    assert f"[WRONG]    pytest {PYTEST_VERSION}" in process.stdout
    assert "pip install -r" in process.stdout


def test_script_checks_several_files_and_reports_a_missing_one(tmp_path):
    first = write(tmp_path, "pytest>=1.0\n", name="a.txt")

    process = run_check(first, tmp_path / "nowhere.txt")

    assert process.returncode == 2
    assert "no requirements file" in process.stderr


@pytest.mark.parametrize("relative", ["requirements.txt", "tests/requirements.txt"])
def test_real_requirement_files_are_readable_by_both_parsers(monkeypatch, relative):
    lines = envcheck.requirement_lines(REPO_ROOT / relative)
    assert lines, f"{relative} lists no packages"

    with_packaging = [envcheck.parse_requirement(line).name for line in lines]
    monkeypatch.setattr(envcheck, "Requirement", None)
    with_fallback = [envcheck.parse_requirement(line).name for line in lines]

    assert with_fallback == with_packaging
