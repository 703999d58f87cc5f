"""The claim and submit functions installed from the modules that call them.

From here on the text of `annotation_claim_next` and `annotation_submit_comparison` lives once, in
`annotation.services.claims.CLAIM_NEXT` and `annotation.services.submissions.SUBMIT_COMPARISON`,
beside the Python that calls them and reads their rows; migrations install it (`InstallFunction`).
The submit now takes the guideline kinds whose items ask for safety labels
(`GuidelineKind.asks_safety_labels`) instead of naming 'safety' in SQL. Undoing this migration
reinstalls what 0004 and 0007 installed.
"""
import importlib

from django.db import migrations

from annotation_site.annotation.services.claims import CLAIM_NEXT
from annotation_site.annotation.services.submissions import SUBMIT_COMPARISON
from annotation_site.db_functions import InstallFunction

_0004 = importlib.import_module("annotation_site.annotation.migrations.0004_claim_and_submit_functions")
_0007 = importlib.import_module("annotation_site.annotation.migrations.0007_sample_text_html")


class Migration(migrations.Migration):
    dependencies = [("annotation", "0011_item_selection")]

    operations = [
        InstallFunction(
            CLAIM_NEXT, digest="4f716ab09c150d55", reverse_sql=_0007.DROP_CLAIM + _0007._with_html(_0004.CLAIM_NEXT)
        ),
        InstallFunction(
            SUBMIT_COMPARISON, digest="f791206d4d4bee26",
            reverse_sql="DROP FUNCTION IF EXISTS annotation_submit_comparison;\n" + _0004.SUBMIT_COMPARISON,
        ),  # fmt: skip
    ]
