"""The token-authentication function installed from the module that calls it.

From here on the text of `accounts_token_user` lives once, in `accounts.authentication.TOKEN_USER`,
beside the Python that calls it and reads its row; migrations install it (`InstallFunction`). The
text is 0003's; undoing this migration reinstalls 0003's.
"""
import importlib

from django.db import migrations

from annotation_site.accounts.authentication import TOKEN_USER
from annotation_site.db_functions import InstallFunction

_0003 = importlib.import_module("annotation_site.accounts.migrations.0003_token_user_function")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_token_user_function")]

    operations = [InstallFunction(TOKEN_USER, digest="8996766cb7df7910", reverse_sql=_0003.DROP + _0003.TOKEN_USER)]
