"""Signals of the runs domain: other apps (the weekly loop) act when a run ends without the runs
app knowing them."""
from django.dispatch import Signal

# Sent on commit once a run is succeeded, failed or cancelled, with `run_id` and `status`.
run_finished = Signal()
