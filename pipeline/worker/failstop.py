"""Exit the worker at once when a batch fails in a way no rule expected.

Faust acks a `take_events` batch in the generator's `finally`, so an exception that
leaves the agent's body gets the batch acked and then committed: the agent restarts
past records it never applied (the records are lost to ARI, alerts and deployments).
Exiting the process before that `finally` runs leaves the offsets where the last good
batch put them; the worker's restart (sophra up, compose's restart policy) reads the
batch again, which is the kill -9 path every part is already proven to survive.
A failure of one record's step is handled beside it (dead letter); this is for the rest
(a bug, an output that Kafka refused for good).

The same `finally` acks a batch when the agent is cancelled mid-batch, and a stop's
commit then skips what the batch had not yet written. A graceful stop waits for the
batches in flight before it cancels agents (faust's `wait_empty`), so `finish` is the
guarantee rather than the usual path: a batch's work runs to its end whatever cancels
the agent meanwhile.
"""
import asyncio
import logging
import os
from contextlib import contextmanager
from typing import Awaitable

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


async def finish(what: str, work: Awaitable) -> None:
    """Await one batch's `work` to its end: a cancellation of the agent meanwhile is held
    until the work is done and then raised; a failure exits as `fail_stop` does, and so
    does the work itself being cancelled (it did not finish, so it must not be acked)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = cancelled or not task.cancelled()  # the agent's, not the work's
        except Exception:
            pass  # the task's own failure, raised by result() below
    with fail_stop(what):
        if task.cancelled():
            raise RuntimeError("the batch's work was cancelled before it finished")
        task.result()
    if cancelled:
        raise asyncio.CancelledError
