"""Batches read ahead in a background thread, so that reading the next ones overlaps the current step."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()


class ReadAhead:
    """``read(key)`` for each of ``keys`` in order, up to ``depth`` of them made ahead of the consumer by one
    thread (``pin``: each result copied into pinned memory there, ready for a non-blocking copy to a GPU).

    An exception in ``read`` is raised by the consumer's next ``next``; :meth:`close` stops the thread,
    also when the consumer stops early.
    """

    def __init__(self, read: Callable[[Any], Any], keys: Iterable[Any], depth: int = 2, pin: bool = False):
        self._results: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(read, list(keys), pin), daemon=True,
                                        name="vmcr2-read-ahead")
        self._thread.start()

    def _produce(self, read, keys, pin) -> None:
        for key in keys:
            try:
                item = read(key)
                if pin:
                    item = item.pin_memory()
            except BaseException as error:  # raised again in the consumer
                self._put(error)
                return
            if not self._put(item):
                return
        self._put(_DONE)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self._results.get()
        if item is _DONE:
            self._results.put(_DONE)  # later calls end too
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
