"""The leaderboard from the annotation stream: which comparisons are votes, filters, the API, the
command and the page, and who may see them."""
import datetime as dt
import itertools
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from annotation_site.accounts.services import user_create
from annotation_site.annotation.models import Comparison, Dialogue, Item, Sample
from annotation_site.generation.models import Checkpoint, CheckpointKind

_counter = itertools.count(1)
WEEK_48 = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)  # a Wednesday of 2026-W48
WEEK_49 = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)


def checkpoint(name):
    return Checkpoint.objects.get_or_create(name=name, defaults={"path": f"/ckpt/{name}", "kind": CheckpointKind.PPO})[0]


def vote(winner, loser, *, rating="better", guideline="helpfulness", created_at=WEEK_48, source="annotation"):
    """One comparison: `winner` and `loser` are checkpoints (the platform's samples) or model names (imports)."""
    n = next(_counter)
    dialogue = Dialogue.objects.create(turns=[{"role": "user", "content": f"question {n}"}], guideline_kind=guideline)

    def sample(model):
        if isinstance(model, Checkpoint):
            return Sample.objects.create(dialogue=dialogue, text=f"answer {n}", model_name=model.name, checkpoint=model)
        return Sample.objects.create(dialogue=dialogue, text=f"answer {n}", model_name=model)

    chosen, rejected = sample(winner), sample(loser)
    item = Item.objects.create(dialogue=dialogue, guideline_kind=guideline, sample_a=chosen, sample_b=rejected)
    comparison = Comparison.objects.create(item=item, guideline_kind=guideline, chosen=chosen, rejected=rejected,
                                           rating=rating, source=source)
    Comparison.objects.filter(pk=comparison.pk).update(created_at=created_at)
    return comparison


@pytest.fixture
def stream(db):
    new, old, sft = checkpoint("ppo-v2"), checkpoint("ppo-v1"), checkpoint("sft")
    for _ in range(6):
        vote(new, old, rating="significantly_better")
    for _ in range(2):
        vote(old, new, rating="negligibly_better")
    for _ in range(3):
        vote(new, sft)
    vote(sft, old)
    vote(old, old)  # two samples of one checkpoint: not a vote between checkpoints
    vote(new, old, guideline="safety", created_at=WEEK_49)
    # Imports: named models are a board of their own; a dataset's anonymous samples are no model.
    for _ in range(3):
        vote("gpt-4", "llama-2-70b-chat", rating="", source="arena")
    vote("llama-2-70b-chat", "gpt-4", rating="", source="arena")
    vote("import:hh-rlhf", "import:hh-rlhf", rating="", source="hh-rlhf")
    return {"new": new, "old": old, "sft": sft}


def researcher_api():
    api = APIClient()
    api.force_authenticate(user_create(username="res", role="researcher", password="pw-123456"))
    return api


def test_only_comparisons_between_two_checkpoints_are_votes_between_them(stream):
    from annotation_site.evaluation.selectors import leaderboard

    board = leaderboard(guideline="helpfulness", bootstrap_rounds=20).boards["checkpoints"]
    assert board.votes == 6 + 2 + 3 + 1
    standings = {row.name: row for row in board.standings}
    assert (standings["ppo-v2"].votes, standings["ppo-v2"].wins) == (11, 9)
    assert (standings["ppo-v1"].votes, standings["ppo-v1"].wins) == (9, 2)
    assert board.standings[0].name == "ppo-v2" and standings["ppo-v2"].checkpoint_id == stream["new"].pk
    for row in board.standings:
        assert row.lower <= row.strength <= row.upper


def test_excluded_comparisons_are_no_votes(stream):
    from annotation_site.evaluation.selectors import leaderboard
    from annotation_site.quality.services import comparison_exclude

    admin = user_create(username="qa", role="admin", password="pw-123456")
    for comparison in Comparison.objects.filter(chosen__checkpoint=stream["old"], rejected__checkpoint=stream["new"]):
        comparison_exclude(comparison=comparison, reason="failed review", excluded_by=admin)
    board = leaderboard(guideline="helpfulness", bootstrap_rounds=20).boards["checkpoints"]
    assert board.votes == 6 + 3 + 1
    assert {row.name: row.wins for row in board.standings}["ppo-v1"] == 0  # its two wins were excluded


def test_trusted_leaves_out_the_votes_of_annotators_quality_control_flags(stream, settings):
    from annotation_site.evaluation.selectors import leaderboard

    settings.QUALITY_MIN_COMPARISONS = 1
    clicker = user_create(username="clicker", role="annotator", password="pw-123456")
    # Every vote for ppo-v1 over ppo-v2 came from one annotator who answered in a tenth of a second.
    Comparison.objects.filter(chosen__checkpoint=stream["old"], rejected__checkpoint=stream["new"]).update(
        annotator=clicker, time_spent_ms=100)
    assert leaderboard(guideline="helpfulness", bootstrap_rounds=0).boards["checkpoints"].votes == 12
    trusted = leaderboard(guideline="helpfulness", trusted=True, bootstrap_rounds=0).boards["checkpoints"]
    assert trusted.votes == 10 and {row.name: row.wins for row in trusted.standings}["ppo-v1"] == 0
    answer = researcher_api().get("/api/leaderboard/", {"guideline": "helpfulness", "trusted": "true", "bootstrap": 0})
    assert answer.status_code == 200


def test_each_pair_shows_its_votes_win_rate_and_rating_split(stream):
    from annotation_site.evaluation.selectors import leaderboard

    board = leaderboard(guideline="helpfulness", bootstrap_rounds=0).boards["checkpoints"]
    pair = next(p for p in board.pairs if {p.a, p.b} == {"ppo-v2", "ppo-v1"})
    assert pair.votes == 8
    first_wins = pair.a_wins_by_rating if pair.a == "ppo-v2" else pair.b_wins_by_rating
    second_wins = pair.b_wins_by_rating if pair.a == "ppo-v2" else pair.a_wins_by_rating
    assert first_wins == {"significantly_better": 6} and second_wins == {"negligibly_better": 2}
    names = [row.name for row in board.standings]
    assert board.win_rates[names.index("ppo-v2")][names.index("ppo-v1")] == pytest.approx(6 / 8)
    assert board.win_rates[names.index("ppo-v1")][names.index("ppo-v2")] == pytest.approx(2 / 8)
    assert board.votes_matrix[names.index("ppo-v1")][names.index("sft")] == 1


def test_imported_votes_between_named_models_are_a_board_of_their_own(stream):
    from annotation_site.evaluation.selectors import leaderboard

    named = leaderboard(bootstrap_rounds=0).boards["named"]
    assert [(row.name, row.votes, row.wins) for row in named.standings] == [("gpt-4", 4, 3), ("llama-2-70b-chat", 4, 1)]
    assert named.pairs[0].a_wins_by_rating == {"unrated": 3}


def test_filters_by_guideline_and_week(stream):
    from annotation_site.evaluation.selectors import leaderboard

    assert leaderboard(guideline="safety", bootstrap_rounds=0).boards["checkpoints"].votes == 1
    assert leaderboard(week="2026-W49", bootstrap_rounds=0).boards["checkpoints"].votes == 1
    assert leaderboard(week="2026-W48", bootstrap_rounds=0).boards["checkpoints"].votes == 12
    assert leaderboard(week="2026-W50", bootstrap_rounds=0).boards["checkpoints"].standings == []


def test_the_api_gives_each_models_strength_bounds_votes_and_wins(stream):
    response = researcher_api().get("/api/leaderboard/?guideline=helpfulness&bootstrap=20")
    assert response.status_code == 200
    board = response.json()["boards"]["checkpoints"]
    assert set(board["standings"][0]) >= {"name", "strength", "lower", "upper", "votes", "wins", "rank"}
    assert board["standings"][0]["name"] == "ppo-v2" and response.json()["guideline"] == "helpfulness"


@pytest.mark.parametrize("query, message", [
    ("week=48", "is not an ISO week"), ("week=2026-W60", "is not an ISO week"), ("guideline=tone", "guideline"),
    ("bootstrap=100000", "bootstrap"),
])
def test_bad_filters_are_a_400_that_says_what_to_write(stream, query, message):
    response = researcher_api().get(f"/api/leaderboard/?{query}")
    assert response.status_code == 400 and message in json.dumps(response.json())


@pytest.mark.django_db
def test_annotators_and_visitors_cannot_see_the_leaderboard(client):
    annotator = user_create(username="ann", role="annotator", password="pw-123456")
    api = APIClient()
    assert api.get("/api/leaderboard/").status_code in (401, 403)
    api.force_authenticate(annotator)
    assert api.get("/api/leaderboard/").status_code == 403
    client.force_login(annotator)
    assert client.get("/leaderboard/").status_code == 403
    client.logout()
    assert client.get("/leaderboard/").status_code == 302


def test_admins_see_the_page_with_both_boards(stream, client):
    client.force_login(user_create(username="adm", role="admin", password="pw-123456"))
    page = client.get("/leaderboard/?guideline=helpfulness")
    html = page.content.decode()
    assert page.status_code == 200
    assert "The platform's checkpoints" in html and "Named models (imported votes)" in html
    assert f'href="/checkpoints/{stream["new"].pk}/"' in html and "gpt-4" in html
    assert "Significantly better" in html and ("6 / 0" in html or "0 / 6" in html)
    bad = client.get("/leaderboard/?week=soon")
    assert bad.status_code == 400 and "is not an ISO week" in bad.content.decode()


def test_the_command_prints_a_table_or_the_apis_json(stream):
    out = StringIO()
    call_command("leaderboard", "--guideline", "helpfulness", "--bootstrap", "10", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("checkpoints: 12 votes (helpfulness")
    assert lines[2].split()[:2] == ["1", "ppo-v2"]
    out = StringIO()
    call_command("leaderboard", "--json", "--bootstrap", "0", stdout=out)
    document = json.loads(out.getvalue())
    assert [row["name"] for row in document["boards"]["named"]["standings"]] == ["gpt-4", "llama-2-70b-chat"]
    with pytest.raises(CommandError, match="ISO week"):
        call_command("leaderboard", "--week", "last", stdout=StringIO())
