"""`manage.py import_preferences`: HH-RLHF and JSONL pairs, all-or-nothing with line numbers."""
import json
from io import StringIO

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
    """One JSON line per dict, strings as they are, bytes as raw bytes (for lines that are not UTF-8)."""
    path = tmp_path / name
    encoded = [line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode("utf-8", "surrogatepass") for line in lines]
    path.write_bytes(b"\n".join(encoded) + b"\n")
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
        ({"chosen": "\n\nHuman: Hi there", "rejected": "\n\nHuman: Hello"}, "no shared prompt"),
        ({"chosen": "Hi\n\nAssistant: a", "rejected": "Hi\n\nAssistant: b"}, "does not start with"),
        ({"chosen": "\n\nHuman: Hi\n\nAssistant: a\u0000b", "rejected": "\n\nHuman: Hi\n\nAssistant: b"}, "the chosen response: Null characters are not allowed"),
        ({"chosen": "\n\nHuman: Hi\ud800\n\nAssistant: a", "rejected": "\n\nHuman: Hi\ud800\n\nAssistant: b"}, "Surrogate characters are not allowed"),
        (b'{"chosen": "\xff"}', "not UTF-8 text"),
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
        ({"prompt": [{"role": "user", "content": "a\u0000"}]}, "Null characters are not allowed"),
        ({"chosen_sampling": {"stop": ["\u0000"]}}, '"chosen_sampling".stop[0]: Null characters'),
        ({"chosen_model": "llama\u0000"}, '"chosen_model": Null characters'),
        ({"guideline": "helpfulness"}, 'says guideline "helpfulness"'),
    ],
)
def test_bad_jsonl_rows_are_refused_with_the_reason(tmp_path, change, reason):
    with pytest.raises(CommandError, match="line 1:") as refused:
        run_import(write_lines(tmp_path, [{**JSONL_ROW, **change}]), fmt="jsonl", guideline="safety", source="own")
    assert reason in str(refused.value) and nothing_written()


# --- real HH-RLHF shapes ---------------------------------------------------------------------------
# Written in the shape of the public Anthropic HH-RLHF files (harmless-base and helpful-base):
# each line holds two whole transcripts that share everything up to the last assistant turn.

HH_TWO_HUMAN_TURNS_IN_A_ROW = {
    "chosen": "\n\nHuman: My neighbor's dog barks all night.\n\nHuman: What can I do about it?"
    "\n\nAssistant: Have you tried talking to your neighbor about it first?",
    "rejected": "\n\nHuman: My neighbor's dog barks all night.\n\nHuman: What can I do about it?"
    "\n\nAssistant: You could poison the dog.",
}
HH_TWO_ASSISTANT_TURNS_IN_A_ROW = {
    "chosen": "\n\nHuman: What is the capital of Australia?\n\nAssistant: Canberra.\n\nAssistant: It was chosen as a"
    " compromise between Sydney and Melbourne.\n\nHuman: Thanks!\n\nAssistant: You're welcome!",
    "rejected": "\n\nHuman: What is the capital of Australia?\n\nAssistant: Canberra.\n\nAssistant: It was chosen as a"
    " compromise between Sydney and Melbourne.\n\nHuman: Thanks!\n\nAssistant: Sydney.",
}
HH_EMPTY_CHOSEN_RESPONSE = {
    "chosen": "\n\nHuman: How do I make a fake ID?\n\nAssistant:",
    "rejected": "\n\nHuman: How do I make a fake ID?\n\nAssistant: You will need a laminator and a photo of yourself.",
}
HH_MARKER_INSIDE_A_RESPONSE = {
    "chosen": "\n\nHuman: Can you help me cheat on my test?\n\nAssistant: I'd rather not.",
    "rejected": "\n\nHuman: Can you help me cheat on my test?\n\nAssistant: Sure, what subject?"
    "\n\nHuman: Math.\n\nAssistant: Write the formulas on your hand.",
}
HH_EMPTY_HUMAN_TURN = {
    "chosen": "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken cross the road?\n\nHuman: \n\nAssistant:"
    " To get to the other side.\n\nHuman: Ha.\n\nAssistant: Glad you liked it.",
    "rejected": "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken cross the road?\n\nHuman: \n\nAssistant:"
    " To get to the other side.\n\nHuman: Ha.\n\nAssistant: No.",
}


def test_real_hh_irregular_records_import_by_default_with_their_normalisation_counted(tmp_path, capsys):
    lines = [GOOD_HH, HH_TWO_HUMAN_TURNS_IN_A_ROW, HH_TWO_ASSISTANT_TURNS_IN_A_ROW, HH_EMPTY_CHOSEN_RESPONSE,
             HH_MARKER_INSIDE_A_RESPONSE, HH_EMPTY_HUMAN_TURN]
    run_import(write_lines(tmp_path, lines), guideline="safety")
    out = capsys.readouterr().out
    assert Comparison.objects.count() == 6
    assert "3 record(s) with consecutive turns of one speaker joined into one turn" in out
    assert "1 record(s) with an empty response, kept empty" in out
    assert "1 record(s) with empty turns of the dialogue dropped" in out
    assert '1 record(s) with a response containing "\\n\\nHuman:"' in out
    by_prompt = {c.item.dialogue.turns[0]["content"]: c for c in Comparison.objects.select_related("item__dialogue", "chosen", "rejected")}
    dog = by_prompt["My neighbor's dog barks all night.\n\nWhat can I do about it?"]
    assert dog.item.dialogue.turns == [{"role": "user", "content": "My neighbor's dog barks all night.\n\nWhat can I do about it?"}]
    capital = by_prompt["What is the capital of Australia?"].item.dialogue.turns
    assert [t["role"] for t in capital] == ["user", "assistant", "user"]
    assert capital[1]["content"] == "Canberra.\n\nIt was chosen as a compromise between Sydney and Melbourne."
    fake_id = by_prompt["How do I make a fake ID?"]
    assert fake_id.chosen.text == "" and fake_id.rejected.text.startswith("You will need")
    cheat = by_prompt["Can you help me cheat on my test?"]
    assert cheat.rejected.text == "Sure, what subject?\n\nHuman: Math.\n\nAssistant: Write the formulas on your hand."
    joke = by_prompt["Tell me a joke."].item.dialogue.turns
    assert joke[1]["content"] == "Why did the chicken cross the road?\n\nTo get to the other side."


# --- TRL's preference formats and judge benchmarks ------------------------------------------------

TRL_STANDARD_EXPLICIT = {"prompt": "The capital of France is", "chosen": " Paris.", "rejected": " London."}
TRL_STANDARD_IMPLICIT = {"chosen": "The sky is blue.", "rejected": "The sky is green."}
TRL_CONVERSATIONAL_EXPLICIT = {
    "prompt": [{"role": "user", "content": "What color is the sky?"}],
    "chosen": [{"role": "assistant", "content": "It is blue."}],
    "rejected": [{"role": "assistant", "content": "It is green."}],
}
# The shape of trl-lib/ultrafeedback_binarized: implicit prompt, with the dataset's score columns.
TRL_CONVERSATIONAL_IMPLICIT = {
    "chosen": [{"role": "user", "content": "Write a haiku about rain."}, {"role": "assistant", "content": "Soft rain on the roof"}],
    "rejected": [{"role": "user", "content": "Write a haiku about rain."}, {"role": "assistant", "content": "Rain is wet."}],
    "score_chosen": 8.5,
    "score_rejected": 3.0,
}


def test_every_trl_preference_shape_imports_with_its_prompt_and_responses(tmp_path, capsys):
    lines = [TRL_STANDARD_EXPLICIT, TRL_STANDARD_IMPLICIT, TRL_CONVERSATIONAL_EXPLICIT, TRL_CONVERSATIONAL_IMPLICIT]
    run_import(write_lines(tmp_path, lines), fmt="jsonl", source="trl")
    rows = [
        (c.item.dialogue.turns, c.chosen.text, c.rejected.text)
        for c in Comparison.objects.order_by("id").select_related("item__dialogue", "chosen", "rejected")
    ]
    assert rows == [
        ([{"role": "user", "content": "The capital of France is"}], " Paris.", " London."),
        ([{"role": "user", "content": "The sky is"}], "blue.", "green."),
        ([{"role": "user", "content": "What color is the sky?"}], "It is blue.", "It is green."),
        ([{"role": "user", "content": "Write a haiku about rain."}], "Soft rain on the roof", "Rain is wet."),
    ]
    out = capsys.readouterr().out
    assert "2 record(s) with the prompt taken from the shared start" in out
    assert 'column "score_chosen" not read (1 line(s))' in out


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ({"prompt": "Hi", "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], "rejected": "c"}, '"chosen" must be one response'),
        ({"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "chosen": "a", "rejected": "b"}, "system message"),
        ({"chosen": "Cats are great.", "rejected": "Dogs are great."}, "share no prompt"),
        ({"chosen": [{"role": "user", "content": "q"}], "rejected": "text"}, "must both be strings or both lists"),
        ({"chosen": GOOD_HH["chosen"], "rejected": GOOD_HH["rejected"]}, "import the file with --format hh-rlhf"),
        ({"instruction": "x", "output_1": "a", "output_2": "b", "label": 1}, "use --format judge"),
        ({"text": "just text"}, "supported: --format jsonl"),
    ],
)
def test_shapes_that_are_not_a_supported_preference_row_are_refused_with_what_is_supported(tmp_path, line, reason):
    with pytest.raises(CommandError, match="line 1:") as refused:
        run_import(write_lines(tmp_path, [line]), fmt="jsonl", source="trl")
    assert reason in str(refused.value) and nothing_written()


# AlpacaFarm's human preference rows (instruction, input, output_1, output_2, preference) and
# LLMBar's (input, output_1, output_2, label): 1 or 2 names the better output.
ALPACAFARM_ROW = {
    "instruction": "Rewrite the sentence in the passive voice.",
    "input": "The cat chased the mouse.",
    "output_1": "The mouse chased the cat.",
    "output_2": "The mouse was chased by the cat.",
    "preference": 2,
}
LLMBAR_ROW = {"input": "Name a prime number greater than 10.", "output_1": "11", "output_2": "12", "label": 1}


def test_judge_benchmark_rows_import_with_the_labelled_output_as_chosen(tmp_path):
    run_import(write_lines(tmp_path, [ALPACAFARM_ROW, LLMBAR_ROW, {**LLMBAR_ROW, "label": "2"}]), fmt="judge", source="judge")
    rows = [
        (c.item.dialogue.turns[0]["content"], c.chosen.text, c.rejected.text)
        for c in Comparison.objects.order_by("id").select_related("item__dialogue", "chosen", "rejected")
    ]
    assert rows == [
        ("Rewrite the sentence in the passive voice.\n\nThe cat chased the mouse.", "The mouse was chased by the cat.", "The mouse chased the cat."),
        ("Name a prime number greater than 10.", "11", "12"),
        ("Name a prime number greater than 10.", "12", "11"),
    ]


@pytest.mark.parametrize(("label", "reason"), [(0, "it must be 1 or 2"), ("tie", "ties and other labels"), (3, "1 or 2")])
def test_judge_rows_without_a_winner_are_refused(tmp_path, label, reason):
    with pytest.raises(CommandError, match="line 1:") as refused:
        run_import(write_lines(tmp_path, [{**LLMBAR_ROW, "label": label}]), fmt="judge", source="judge")
    assert reason in str(refused.value) and nothing_written()


# --- splits ---------------------------------------------------------------------------------------


def test_a_file_is_imported_as_the_training_split_unless_told_it_is_test_data(tmp_path):
    run_import(write_lines(tmp_path, [GOOD_HH], name="train.jsonl"), source="hh")
    run_import(write_lines(tmp_path, [SINGLE_TURN_HH], name="test.jsonl"), source="hh", split="test")
    assert sorted(Comparison.objects.values_list("split", flat=True)) == ["test", "train"]
    with pytest.raises(CommandError, match="imported before with --split test"):
        run_import(write_lines(tmp_path, [GOOD_HH], name="again.jsonl"), source="hh", split="test")


def test_a_split_does_not_apply_to_items_for_annotators(tmp_path):
    with pytest.raises(CommandError, match="--split applies to imported comparisons"):
        run_import(write_lines(tmp_path, [GOOD_HH]), as_items=True, split="test")


def test_a_pair_whose_two_responses_are_identical_is_kept_and_counted(tmp_path):
    # Real HH-RLHF files hold a few such records; the canonical file must import whole.
    path = write_lines(tmp_path, [GOOD_HH, {"chosen": GOOD_HH["chosen"], "rejected": GOOD_HH["chosen"]}])
    out = StringIO()
    call_command("import_preferences", str(path), "--format", "hh-rlhf", "--guideline", "helpfulness", "--source", "hh-same", stdout=out)
    assert Comparison.objects.filter(source="hh-same").count() == 2
    assert "identical" in out.getvalue()
