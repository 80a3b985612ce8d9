"""Exit the worker at once when a batch fails in a way no rule expected.

Faust acks a `take_events` batch in the generator's `finally`, so an exception that
leaves the agent's body gets the batch acked and then committed: the agent restarts
past records it never applied (the records are lost to ARI, alerts and deployments).
Exiting the process before that `finally` runs leaves the offsets where the last good
batch put them; the worker's restart (sophra up, compose's restart policy) reads the
batch again, which is the kill -9 path every part is already proven to survive.
A failure of one record's step is handled beside it (dead letter); this is for the rest
(a bug, an output that Kafka refused for good).
"""
import logging
import os
from contextlib import contextmanager

log = logging.getLogger("sophra.worker")

EXIT_CODE = 70  # EX_SOFTWARE


@contextmanager
def fail_stop(what: str):
    try:
        yield
    except Exception:
        log.critical("%s failed on a batch; exiting before it is acknowledged, so it is read again", what,
                     exc_info=True)
        logging.shutdown()
        os._exit(EXIT_CODE)
