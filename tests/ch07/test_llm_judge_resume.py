"""LLM-judge runs (llm_client.process_entries) resume after a cut-short results file."""

import json

from support.course_imports import import_course_module

client = import_course_module("ch07/03_model-evaluation/llm_client.py")


def test_resume_keeps_the_whole_entries_of_a_cut_short_file(tmp_path, capsys):
    entries = [{"instruction": f"task {i}"} for i in range(5)]
    output = tmp_path / "scores.json"
    client.write_json_atomically(output, [{**entry, "score": 50 + i}
                                          for i, entry in enumerate(entries[:3])])
    text = output.read_text()
    output.write_text(text[:text.rindex('"score"')])  # the third entry, cut short

    calls = []

    def judge(entry):
        calls.append(entry["instruction"])
        return {**entry, "score": 90}

    results = client.process_entries(entries, judge, output, resume=True)

    assert "ends in a cut-short entry: resuming after its 2 whole entries" in \
        capsys.readouterr().err
    assert calls == ["task 2", "task 3", "task 4"]  # the cut-short one is judged again
    assert [r["score"] for r in results] == [50, 51, 90, 90, 90]
    assert json.loads(output.read_text()) == results


def test_whole_leading_items_of_a_broken_list():
    assert client.whole_leading_items('[{"a": 1}, {"b": [2, 3]}, {"c"') == [{"a": 1},
                                                                           {"b": [2, 3]}]
    assert client.whole_leading_items("") == []
    assert client.whole_leading_items("[") == []
