"""Which event a Faust table write belongs to, inside a micro-batch.

A Faust table sends each change to the changelog partition of the event being processed
(`faust.streams.current_event()`), so that the change is recovered by whichever worker gets that
partition. Inside `stream.take_events()` no event is current in the agent's context (a table
write raises "Cannot modify table key from outside of stream iteration"), so agents that change a
table per event of a batch name the event explicitly with `processing(event)`.
This sets the same context variable Faust's own stream iteration sets (faust-streaming 0.11+).
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

from faust import streams


@contextmanager
def processing(event):
    token = streams._current_event.set(weakref.ref(event))
    try:
        yield event
    finally:
        streams._current_event.reset(token)
