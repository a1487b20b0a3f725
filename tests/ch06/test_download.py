"""download_and_unzip_spam_data: safe, atomic extraction, and clear errors for bad zips."""

import zipfile

import pytest

MIRROR_ZIP = "sms+spam+collection.zip"


@pytest.fixture(scope="module")
def real_data(ch06, needs_mirror):
    """The bytes of the real SMSSpamCollection, read from the mirror's zip."""
    with zipfile.ZipFile(needs_mirror / MIRROR_ZIP) as archive:
        return archive.read("SMSSpamCollection")


def extract(ch06, folder):
    """Run the function on the zip already placed at folder/data.zip (no download)."""
    return ch06.download_and_unzip_spam_data(
        "https://example.invalid/data.zip", folder / "data.zip", folder / "out",
        folder / "out" / "SMSSpamCollection.tsv")


def leftovers(folder):
    return sorted(p.name for p in (folder / "out").iterdir()) if (folder / "out").exists() else []


def write_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_extracts_the_data_file_and_checks_it(tmp_path, ch06, real_data):
    write_zip(tmp_path / "data.zip", {"readme": b"about", "SMSSpamCollection": real_data})
    path = extract(ch06, tmp_path)
    assert path.read_bytes() == real_data
    assert leftovers(tmp_path) == ["SMSSpamCollection.tsv"]  # the readme is not extracted
    # a second call finds the file and does nothing, even without the zip
    (tmp_path / "data.zip").unlink()
    assert extract(ch06, tmp_path) == path


def test_member_names_never_become_paths(tmp_path, ch06, real_data):
    write_zip(tmp_path / "data.zip", {"../../escaped": b"x", "../SMSSpamCollection": real_data})
    extract(ch06, tmp_path)
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert (tmp_path / "out" / "SMSSpamCollection.tsv").read_bytes() == real_data


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_zip_gives_one_line_and_writes_nothing(tmp_path, ch06, real_data, damage):
    write_zip(tmp_path / "good.zip", {"SMSSpamCollection": real_data})
    good = (tmp_path / "good.zip").read_bytes()
    bad = b"PK\x03\x04 not really a zip" * 100 if damage == "garbage" else good[:len(good) // 2]
    (tmp_path / "data.zip").write_bytes(bad)
    with pytest.raises(ValueError, match="data.zip is not a usable zip file") as info:
        extract(ch06, tmp_path)
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path) == []  # no data file, no temporary file


def test_corrupted_member_is_caught_by_crc(tmp_path, ch06, real_data):
    write_zip(tmp_path / "data.zip", {"SMSSpamCollection": real_data})
    raw = bytearray((tmp_path / "data.zip").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # flip bits inside the compressed data
    (tmp_path / "data.zip").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a usable zip file"):
        extract(ch06, tmp_path)
    assert leftovers(tmp_path) == []


def test_wrong_contents_fail_the_checksum(tmp_path, ch06, real_data):
    write_zip(tmp_path / "data.zip", {"SMSSpamCollection": real_data[:-10]})
    with pytest.raises(ValueError, match="sha256 mismatch"):
        extract(ch06, tmp_path)
    assert leftovers(tmp_path) == []


def test_zip_without_the_data_file(tmp_path, ch06):
    write_zip(tmp_path / "data.zip", {"readme.txt": b"nothing here"})
    with pytest.raises(ValueError, match="holds no SMSSpamCollection"):
        extract(ch06, tmp_path)
    assert leftovers(tmp_path) == []
