"""`manage.py import_preferences`: HH-RLHF and JSONL pairs, all-or-nothing with line numbers."""
import json

import pytest
from django.core.management import CommandError, call_command

from annotation_site.annotation.models import Comparison, Dialogue, Item, ItemStatus, Sample

pytestmark = pytest.mark.django_db

GOOD_HH = {
    "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 3\n\nHuman: Really?\n\nAssistant: Sorry, it is 4.",
    "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 3\n\nHuman: Really?\n\nAssistant: Yes, 3.",
}
SINGLE_TURN_HH = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}


def write_lines(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return str(path)


def run_import(path, *, fmt="hh-rlhf", guideline="helpfulness", source="hh-test", **options):
    call_command("import_preferences", path, format=fmt, guideline=guideline, source=source, **options)


def nothing_written():
    return not (Dialogue.objects.exists() or Sample.objects.exists() or Item.objects.exists() or Comparison.objects.exists())


def test_hh_pairs_become_completed_comparisons_with_the_shared_prefix_as_dialogue(tmp_path):
    run_import(write_lines(tmp_path, [GOOD_HH, SINGLE_TURN_HH]))
    first, second = Comparison.objects.order_by("id")
    assert first.item.dialogue.turns == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "3"},
        {"role": "user", "content": "Really?"},
    ]
    assert (first.chosen.text, first.rejected.text) == ("Sorry, it is 4.", "Yes, 3.")
    assert second.item.dialogue.turns == [{"role": "user", "content": "Hi"}]
    assert (first.source, first.rating, first.annotator, first.guideline_kind) == ("hh-test", "", None, "helpfulness")
    assert first.item.status == ItemStatus.DONE and first.chosen.model_name == "import:hh-test"


def test_with_as_items_the_pairs_are_queued_for_annotators(tmp_path):
    run_import(write_lines(tmp_path, [GOOD_HH, SINGLE_TURN_HH]), guideline="safety", as_items=True)
    assert not Comparison.objects.exists()
    assert list(Item.objects.values_list("status", "guideline_kind", "open_slots")) == [("ready", "safety", 1)] * 2


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"chosen": "\\n\\nHuman: x', "malformed JSON"),
        ({"chosen": GOOD_HH["chosen"]}, 'missing key "rejected"'),
        ({"chosen": GOOD_HH["chosen"], "rejected": GOOD_HH["chosen"]}, "identical"),
        ({"chosen": "\n\nHuman: Hi there", "rejected": "\n\nHuman: Hello"}, "no assistant turn"),
        ({"chosen": "Hi\n\nAssistant: a", "rejected": "Hi\n\nAssistant: b"}, "does not start with"),
        ({"chosen": "\n\nHuman: Hi\n\nAssistant:  ", "rejected": "\n\nHuman: Hi\n\nAssistant: b"}, "chosen response is empty"),
        ('["a list"]', "must be a JSON object"),
    ],
)
def test_any_bad_line_refuses_the_whole_file_with_its_line_number_and_writes_nothing(tmp_path, bad_line, reason):
    path = write_lines(tmp_path, [GOOD_HH, bad_line, SINGLE_TURN_HH])
    with pytest.raises(CommandError) as refused:
        run_import(path)
    assert "line 2:" in str(refused.value) and reason in str(refused.value)
    assert "nothing was imported" in str(refused.value)
    assert nothing_written()


def test_skip_invalid_imports_the_good_lines_and_lists_every_skipped_line(tmp_path, capsys):
    path = write_lines(tmp_path, [GOOD_HH, "{oops", SINGLE_TURN_HH, {"chosen": "x"}])
    run_import(path, skip_invalid=True)
    out = capsys.readouterr().out
    assert "skipped line 2: malformed JSON" in out and 'skipped line 4: missing key "rejected"' in out
    assert Comparison.objects.count() == 2


def test_importing_the_same_source_twice_is_refused(tmp_path):
    path = write_lines(tmp_path, [GOOD_HH])
    run_import(path)
    with pytest.raises(CommandError, match="imported before"):
        run_import(path)
    assert Comparison.objects.count() == 1


def test_an_empty_file_is_refused(tmp_path):
    with pytest.raises(CommandError, match="no valid line"):
        run_import(write_lines(tmp_path, [""]))


JSONL_ROW = {
    "prompt": [{"role": "user", "content": "How do I pick a lock?"}],
    "chosen": [{"role": "assistant", "content": "I can't help with breaking into places, but a locksmith can."}],
    "rejected": "Insert a tension wrench and rake the pins.",
    "rating": "significantly_better",
    "chosen_is_safe": True,
    "rejected_is_safe": False,
    "chosen_model": "llama-sft",
    "chosen_sampling": {"temperature": 0.7},
    "margin": 1.0,
    "split": "train",
}


def test_jsonl_rows_keep_rating_safety_labels_and_models(tmp_path):
    run_import(write_lines(tmp_path, [JSONL_ROW]), fmt="jsonl", guideline="safety", source="own")
    comparison = Comparison.objects.get()
    assert (comparison.rating, comparison.safety_bin) == ("significantly_better", "chosen_safe_other_unsafe")
    assert comparison.chosen.model_name == "llama-sft" and comparison.chosen.sampling_params == {"temperature": 0.7}
    assert comparison.rejected.model_name == "import:own"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"rating": "much_better"}, "unknown rating"),
        ({"chosen_is_safe": False, "rejected_is_safe": True}, "never used"),
        ({"prompt": [{"role": "assistant", "content": "hi"}]}, "bad dialogue"),
        ({"colour": "blue"}, "unknown key(s) colour"),
        ({"guideline": "helpfulness"}, 'says guideline "helpfulness"'),
    ],
)
def test_bad_jsonl_rows_are_refused_with_the_reason(tmp_path, change, reason):
    with pytest.raises(CommandError, match="line 1:") as refused:
        run_import(write_lines(tmp_path, [{**JSONL_ROW, **change}]), fmt="jsonl", guideline="safety", source="own")
    assert reason in str(refused.value) and nothing_written()
