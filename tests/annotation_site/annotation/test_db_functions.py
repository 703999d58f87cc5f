"""The hot path's PostgreSQL functions are the text of the modules that call them, installed by a migration."""
import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from annotation_site.accounts.authentication import TOKEN_USER
from annotation_site.annotation.services.claims import CLAIM_NEXT
from annotation_site.annotation.services.submissions import SUBMIT_COMPARISON
from annotation_site.db_functions import InstallFunction

HOT_PATH_FUNCTIONS = [TOKEN_USER, CLAIM_NEXT, SUBMIT_COMPARISON]


def newest_installs() -> dict[str, InstallFunction]:
    """The last InstallFunction of each function name, in the order the migrations apply."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    newest = {}
    for key in _plan(loader):
        for operation in loader.graph.nodes[key].operations:
            if isinstance(operation, InstallFunction):
                newest[operation.function.name] = operation
    return newest


def _plan(loader) -> list:
    plan = []
    for leaf in loader.graph.leaf_nodes():
        plan += [key for key in loader.graph.forwards_plan(leaf) if key not in plan]
    return plan


def test_the_newest_migration_installing_each_function_was_written_for_its_current_text():
    newest = newest_installs()
    assert set(newest) >= {function.name for function in HOT_PATH_FUNCTIONS}
    for name, operation in newest.items():
        assert operation.digest == operation.function.digest, (
            f"The SQL of {name} changed after its newest migration: add a migration with "
            f'InstallFunction(<the function>, digest="{operation.function.digest}", reverse_sql=<the text before>).'
        )


@pytest.mark.django_db
def test_the_installed_functions_are_the_text_of_their_modules(postgres):
    with connection.cursor() as cursor:
        for function in HOT_PATH_FUNCTIONS:
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [function.name])
            assert cursor.fetchall() == [(function.body,)], function.name
