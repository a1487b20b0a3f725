"""The documentation points at files that exist, and CI runs README's command."""

import re
import subprocess
from pathlib import Path

import pytest
from notebooks import REPO_ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def markdown_files():
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return sorted(tracked)


@pytest.mark.parametrize("markdown", markdown_files())
def test_relative_links_resolve(markdown):
    path = REPO_ROOT / markdown
    broken = [
        target for target in LINK.findall(path.read_text())
        if "://" not in target and not target.startswith("mailto:")
        and not (path.parent / target).exists()
    ]
    assert not broken, f"{markdown} links to missing files: {broken}"


def test_ci_runs_the_readme_test_command():
    """.ci/run extracts the command between README's test-command markers."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- test-command -->\n```bash\n(.+?)\n```\n<!-- /test-command -->",
                      readme, re.DOTALL)
    assert block, "README.md must show the test command between its markers"
    assert "pytest" in block.group(1)
    assert "<!-- test-command -->" in (REPO_ROOT / ".ci" / "run").read_text()


def test_quick_start_script_exists():
    readme = (REPO_ROOT / "README.md").read_text()
    scripts = re.findall(r"python3 (\S+\.py)", readme)
    assert scripts, "README.md should show how to run the main job"
    for script in scripts:
        assert Path(REPO_ROOT, script).is_file(), script


LINUX_ONLY = re.compile(r"\b(free -h|nproc|lscpu|apt(-get)? install|flock)\b|/tmp/")


@pytest.mark.parametrize("markdown", [m for m in markdown_files() if m != "CONTRIBUTING.md"])
def test_reader_facing_docs_give_no_linux_only_commands(markdown):
    """Readers use Windows and macOS too: commands must work there (or show how)."""
    text = (REPO_ROOT / markdown).read_text()
    linux_only = sorted({match.group(0) for match in LINUX_ONLY.finditer(text)})
    assert not linux_only, f"{markdown} uses Linux-only commands: {linux_only}"
    for variable in re.findall(r"^export (\w+)=", text, re.MULTILINE):
        assert f"$env:{variable}" in text, (
            f"{markdown}: `export {variable}=...` needs the Windows form `$env:{variable} = ...`"
        )


def test_every_chapter_folder_has_a_readme():
    """Each main-code and bonus folder explains itself (what, how to run, results)."""
    folders = sorted(path for pattern in ("ch0*/0*", "appendix-*/0*")
                     for path in REPO_ROOT.glob(pattern) if path.is_dir())
    assert folders
    missing = [str(folder.relative_to(REPO_ROOT)) for folder in folders
               if not (folder / "README.md").is_file()]
    assert not missing, f"folders without a README.md: {missing}"
