"""`atomic_write`, the one way course scripts write a result: one test per promise.

The promises (see the helper's docstring): the temporary file sits in the
target's folder, is fsync'ed, then renamed; the result has the mode a plain
`open()` gives; an error, SIGINT or SIGTERM leaves the old file as it was and
no temporary file. Also `published_file`, which never replaces a user's file.
"""

import os
import signal
import textwrap
import time

import pytest
from support.course_imports import import_course_module
from support.helpers import sigterm_once_a_part_file_appears

downloads = import_course_module("ch02/01_main-chapter-code/downloads.py")

OLD = "the user's good result\n"


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "result.txt"
    path.write_text(OLD)
    return path


def test_temporary_file_is_in_the_same_folder_and_the_target_changes_only_at_the_end(target):
    with downloads.atomic_write(target) as f:
        f.write("new")
        assert os.path.dirname(f.name) == str(target.parent)
        assert f.name.endswith(".part")
        assert target.read_text() == OLD  # nothing visible before the rename
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.txt"]


def test_data_is_fsynced_before_the_rename(target, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b)))
    with downloads.atomic_write(target, "wb") as f:
        f.write(b"\x00\x01")
    assert events == ["fsync", "replace"]
    assert target.read_bytes() == b"\x00\x01"


def test_a_new_file_gets_the_mode_a_plain_open_gives_under_umask_022(tmp_path):
    old_umask = os.umask(0o022)
    try:
        with downloads.atomic_write(tmp_path / "new.csv") as f:
            f.write("a,b\n")
        (tmp_path / "plain.csv").write_text("a,b\n")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "plain.csv").stat().st_mode & 0o777 == 0o644


def test_a_replaced_file_keeps_its_mode(target):
    os.chmod(target, 0o640)
    with downloads.atomic_write(target) as f:
        f.write("new")
    assert target.stat().st_mode & 0o777 == 0o640


def test_an_error_while_writing_leaves_the_old_file_and_no_debris(target):
    with pytest.raises(RuntimeError), downloads.atomic_write(target) as f:
        f.write("half of it")
        raise RuntimeError("disk full, say")
    assert target.read_text() == OLD
    assert [p.name for p in target.parent.iterdir()] == ["result.txt"]


def test_sigint_while_writing_leaves_the_old_file_and_no_debris(target):
    with pytest.raises(KeyboardInterrupt), downloads.atomic_write(target) as f:
        f.write("half of it")
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the signal arrives before this ends
    assert target.read_text() == OLD
    assert [p.name for p in target.parent.iterdir()] == ["result.txt"]


def test_sigterm_while_writing_leaves_the_old_file_and_no_debris(target):
    """A real process, killed the way a scheduler or `kill` does it."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(downloads.__file__)!r})
        import downloads
        with downloads.atomic_write({str(target)!r}) as f:
            f.write("half of it")
            f.flush()
            time.sleep(60)
    """)
    returncode = sigterm_once_a_part_file_appears(script, target.parent)
    assert returncode == 128 + signal.SIGTERM
    assert target.read_text() == OLD
    assert [p.name for p in target.parent.iterdir()] == ["result.txt"]


def test_only_whole_file_modes_are_accepted(target):
    with pytest.raises(ValueError, match="whole files"), downloads.atomic_write(target, "a"):
        pass


def test_published_file_leaves_a_users_different_file_alone(tmp_path, capsys):
    users = tmp_path / "instruction-data.json"
    users.write_text('[{"instruction": "my own edit"}]')
    path = downloads.published_file("https://example.com/instruction-data.json", users,
                                    sha256="0" * 64)
    assert path == users
    assert users.read_text() == '[{"instruction": "my own edit"}]'
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and str(users) in lines[0] and "as it is" in lines[0]
