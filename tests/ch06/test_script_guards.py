"""gpt_class_finetune.py: a run that would train on 0 batches is refused before the
model is built, and a second run never replaces the first one's model silently."""

import pytest


@pytest.mark.needs_mirror("sms+spam+collection.zip")
def test_a_batch_larger_than_the_training_data_is_refused(tmp_path, ch06, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        ch06.run_from_command_line(["--test-mode", "--batch-size", "100", "--device", "cpu",
                                    "--output-dir", str(out), "--data-dir", str(tmp_path / "data")])
    assert info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "--batch-size" in error and "0 training batches" in error
    assert not out.exists() or not any(out.iterdir())  # nothing saved


def test_an_earlier_model_is_replaced_only_with_overwrite(tmp_path, ch06, capsys):
    (tmp_path / "review_classifier.pth").write_bytes(b"yesterday's model")
    with pytest.raises(SystemExit) as info:
        ch06.parse_args(["--output-dir", str(tmp_path)])
    assert info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "--output-dir" in error and "--overwrite" in error
    assert ch06.parse_args(["--output-dir", str(tmp_path), "--overwrite"])["overwrite"]


def test_a_users_own_sms_collection_is_used_as_it_is(tmp_path, ch06, capsys):
    users = tmp_path / "SMSSpamCollection.tsv"
    users.write_text("ham\tmy own message\nspam\tmy own spam\n")
    path = ch06.download_and_unzip_spam_data(ch06.SMS_SPAM_URL, tmp_path / "sms.zip", tmp_path,
                                             users)
    assert path == users and users.read_text() == "ham\tmy own message\nspam\tmy own spam\n"
    assert f"Using {users} as it is" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SMSSpamCollection.tsv"]
