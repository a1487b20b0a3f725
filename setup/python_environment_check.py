"""Check that this Python environment has the packages the course needs.

    python setup/python_environment_check.py                         # ../requirements.txt
    python setup/python_environment_check.py tests/requirements.txt  # any other file(s)

The list of packages is read from the requirements file itself (never a
copy kept here), and each one is reported on its own line:

    [OK]       torch 2.13.0+cpu  (wanted <3,>=2.2)
    [MISSING]  tiktoken          (wanted >=0.7)
    [WRONG]    numpy 1.24.4      (wanted >=1.26)
    [SKIPPED]  tensorflow        (not for this platform: sys_platform != "linux")

The exit status is 1 when anything is missing or has a wrong version, so the
script can also guard a shell script or a CI job.
"""

# Lazy annotations keep this file importable on Pythons older than 3.10, so
# it can tell their users that their Python is too old instead of crashing.
from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Requirement lines are parsed by `packaging` (the library pip itself uses),
# or by the copy of it that pip bundles. On an environment with neither, a
# small parser below understands the usual `name[extras] >=1.0,<2` lines.
try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:
    try:
        from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
        from pip._vendor.packaging.specifiers import SpecifierSet
        from pip._vendor.packaging.version import InvalidVersion, Version
    except ImportError:
        Requirement = None

DEFAULT_REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
MIN_PYTHON = (3, 10)


@dataclass
class WantedPackage:
    """One requirement line, reduced to what the check needs."""

    name: str
    specifier: str  # e.g. "<3,>=2.2"; "" accepts any version
    marker: str = ""  # e.g. 'sys_platform == "linux"'; "" means everywhere
    applies: bool | None = True  # the marker's verdict here; None: could not evaluate


@dataclass
class CheckResult:
    wanted: WantedPackage
    status: str  # "OK", "MISSING", "WRONG" or "SKIPPED"
    installed: str | None = None

    @property
    def is_problem(self):
        return self.status in ("MISSING", "WRONG")


def requirement_lines(path):
    """The requirement lines of a file, without comments, blanks and pip options.

    `-r other.txt` includes are followed (relative to the including file).
    """
    path = Path(path)
    lines = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()  # `#` starts a comment
        if not line:
            continue
        include = re.match(r"(-r|--requirement)[\s=]+(\S+)$", line)
        if include:
            lines.extend(requirement_lines(path.parent / include.group(2)))
        elif not line.startswith("-"):  # other pip options (--index-url ...) are not packages
            lines.append(line)
    return lines


def parse_requirement(line):
    """Turn `name[extras] specifiers ; marker` into a `WantedPackage`."""
    if Requirement is None:
        return _parse_requirement_simply(line)
    try:
        requirement = Requirement(line)
    except InvalidRequirement as err:
        raise ValueError(f"cannot read requirement {line!r}: {err}") from err
    marker = requirement.marker
    return WantedPackage(
        name=requirement.name,
        specifier=str(requirement.specifier),
        marker=str(marker) if marker else "",
        applies=marker.evaluate() if marker else True,
    )


def _parse_requirement_simply(line):
    """Fallback parser: name, optional [extras], specifiers; markers left unevaluated."""
    match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?", line)
    if not match:
        raise ValueError(f"cannot read requirement {line!r}")
    name, _extras, specifier, marker = match.groups()
    marker = marker[1:].strip() if marker else ""
    return WantedPackage(
        name=name,
        specifier=re.sub(r"\s+", "", specifier),
        marker=marker,
        applies=None if marker else True,
    )


def installed_version(name):
    """The installed version of distribution `name`, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_allowed(version, specifier):
    """Does `version` (e.g. "2.13.0+cpu") satisfy `specifier` (e.g. ">=2.2,<3")?"""
    if not specifier:
        return True
    if Requirement is None:
        return all(_clause_allows(version, clause) for clause in specifier.split(","))
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    # Pre-releases count: someone on a nightly torch has a working torch.
    return SpecifierSet(specifier).contains(parsed, prereleases=True)


def _release_numbers(version):
    """ "2.13.0+cpu" -> (2, 13, 0): the numeric part that the fallback compares."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _clause_allows(version, clause):
    """Fallback check of one clause such as ">=2.2", "==2.*" or "~=1.4"."""
    operator, target = re.fullmatch(r"(~=|==|!=|<=|>=|<|>)(.+)", clause).groups()
    have = _release_numbers(version)
    if target.endswith(".*"):  # prefix match: ==2.* / !=2.*
        prefix = _release_numbers(target[:-2])
        same = have[: len(prefix)] == prefix
        return same if operator == "==" else not same
    want = _release_numbers(target)
    width = max(len(have), len(want))
    have, want_padded = (v + (0,) * (width - len(v)) for v in (have, want))
    if operator == "~=":  # compatible release: >=1.4.2 and ==1.4.*
        return have >= want_padded and have[: len(want) - 1] == want[:-1]
    return {
        "==": have == want_padded,
        "!=": have != want_padded,
        "<=": have <= want_padded,
        ">=": have >= want_padded,
        "<": have < want_padded,
        ">": have > want_padded,
    }[operator]


def check_requirement(wanted):
    """Compare one requirement with what is installed."""
    if wanted.applies is not True:  # another platform, or a marker we cannot read
        return CheckResult(wanted, "SKIPPED")
    version = installed_version(wanted.name)
    if version is None:
        return CheckResult(wanted, "MISSING")
    status = "OK" if version_allowed(version, wanted.specifier) else "WRONG"
    return CheckResult(wanted, status, version)


def check_requirements_file(path):
    """Check every requirement listed in `path`; returns a list of `CheckResult`."""
    return [check_requirement(parse_requirement(line)) for line in requirement_lines(path)]


def format_result(result):
    """One aligned report line, e.g. `[OK]       torch 2.13.0  (wanted <3,>=2.2)`."""
    wanted = result.wanted
    found = f"{wanted.name} {result.installed or ''}".strip()
    if result.status == "SKIPPED" and wanted.applies is None:
        note = f"install `packaging` to evaluate: {wanted.marker}"
    elif result.status == "SKIPPED":
        note = f"not for this platform: {wanted.marker}"
    else:
        note = f"wanted {wanted.specifier or 'any version'}"
    return f"{'[' + result.status + ']':<10} {found:<28} ({note})"


def python_version_line():
    """A report line for the interpreter itself, and whether it is new enough."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    ok = sys.version_info[:2] >= MIN_PYTHON
    wanted = ".".join(str(part) for part in MIN_PYTHON)
    status = "[OK]" if ok else "[WRONG]"
    return f"{status:<10} {'python ' + version:<28} (wanted >={wanted})", ok


def main(argv=None):
    # Kept apart from the course's script_helpers.py: this check must run before
    # anything (torch included) is installed, so it uses plain argparse.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        "requirements", nargs="*", type=Path, default=argparse.SUPPRESS,
        help="requirements file(s) to check (default: the repository's requirements.txt)",
    )
    requirements = getattr(parser.parse_args(argv), "requirements", [DEFAULT_REQUIREMENTS])
    missing = [str(path) for path in requirements if not path.is_file()]
    if missing:
        print(f"{parser.prog}: error: argument requirements: no requirements file at "
              f"{missing[0]}", file=sys.stderr)
        return 2

    line, all_ok = python_version_line()
    print(line)
    for path in requirements:
        shown = os.path.relpath(path)  # no machine-specific absolute paths in the report
        print(f"\nChecking {shown}")
        results = check_requirements_file(path)
        for result in results:
            print(format_result(result))
        if any(result.is_problem for result in results):
            all_ok = False
            print(f'To fix: python -m pip install -r "{shown}"')

    print("\nEverything is in place." if all_ok else "\nSome requirements are not met (see above).")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
