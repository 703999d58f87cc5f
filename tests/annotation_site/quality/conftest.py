import pytest

from annotation_site.quality import selectors


@pytest.fixture(autouse=True)
def fresh_gold_rates():
    # The claim caches the gold rates per process; each test sets its own.
    selectors.gold_rates_forget()
    yield
    selectors.gold_rates_forget()
