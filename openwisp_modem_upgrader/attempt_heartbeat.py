"""A worker's heartbeat while it runs an attempt.

The stuck-operation rule (``engine.recover_lost_workers``) retries an
attempt whose worker was silent for ``STUCK_OPERATION_TIMEOUT`` before the
flash started. A live worker can be silent that long without a heartbeat
(an SSH connection or a shell command slow on a busy machine, before any
progress): taken for dead, its attempt was dispatched again beside it, and
the second attempt's preparation removed the first's scripts from the
router. A thread of the worker's now touches the attempt three times per
timeout; a dead worker (or a frozen one) stops touching it.
"""

import logging
import threading
from contextlib import contextmanager

from django.db import DatabaseError, connection

from . import settings as app_settings
from .upgrade import touch_attempt

logger = logging.getLogger(__name__)


def beat_interval():
    return max(app_settings.STUCK_OPERATION_TIMEOUT / 3, 0.1)


@contextmanager
def attempt_heartbeat(operation_id, attempt):
    """``with attempt_heartbeat(pk, attempt): ...`` around a worker's part of
    an attempt, up to the point of no return (then the follow-ups lease
    the operation: ``FOLLOW_LEASE``)."""
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(beat_interval()):
                try:
                    if not touch_attempt(operation_id, attempt):
                        return  # flashing, finished, or another attempt's
                except DatabaseError as error:
                    # the attempt goes on; the next beat tries again
                    logger.warning("heartbeat of %s: %s", operation_id, error)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(
        target=beat, name=f"modem-upgrade-heartbeat-{operation_id}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
