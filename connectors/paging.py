"""Reading several independent page streams at once (contacts, deals, one per deal track...), for every
connector whose CRM lets those lists be read side by side."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

from connectors.base import Page

_DONE = object()


def interleave(streams: Sequence[Iterator[Page]], concurrent: bool) -> Iterator[Page]:
    """The pages of several independent streams, each run in its own thread when ``concurrent``, in the
    order they arrive (each stream's own order kept). A stream blocks once it has one page waiting, so
    memory stays bounded by a page per stream however large the portal; the first error of any stream
    stops them all and is raised here. Closing the iterator (a time budget) stops the threads at their next
    page."""
    if not concurrent or len(streams) < 2:
        for stream in streams:
            yield from stream
        return
    arrived: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=len(streams))
    stop = threading.Event()

    def hand_over(index: int, item: object) -> bool:
        while not stop.is_set():
            try:
                arrived.put((index, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(index: int, stream: Iterator[Page]) -> None:
        try:
            for page in stream:
                if not hand_over(index, page):
                    return
            hand_over(index, _DONE)
        except BaseException as exc:  # handed to the consumer, who raises it
            hand_over(index, exc)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # a stream stopped early shuts its own helpers (the association reader)

    threads = [threading.Thread(target=run, args=(i, s), name=f"pull-{i}", daemon=True)
               for i, s in enumerate(streams)]
    for thread in threads:
        thread.start()
    try:
        running = len(streams)
        while running:
            _, item = arrived.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                assert isinstance(item, Page)
                yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()
