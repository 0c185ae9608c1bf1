"""Work on several threads, results out in order: the exporter's parallel pipeline.

``run_in_order(items, work, emit, threads)`` calls ``work(item)`` for every item of the
iterator, on ``threads`` threads (this one among them), and ``emit(item, result)`` for each
in the iterator's order, one at a time. ``work`` may release the GIL (the C formatter does),
so the work runs in parallel; ``emit`` is called by whichever thread finds the next result
ready -- usually the thread that just made it, while the result is still in its core's cache
(a chunk's text is about a megabyte, and the kernel copies it into the page cache).

There is no separate writer thread: on a 2-core machine a third busy thread would only take
turns with the two formatting ones. At most ``limit`` items are taken and not yet emitted,
so memory stays bounded whatever the length of the iterator.

Failures come out in item order: whether ``next(items)``, ``work`` or ``emit`` raised it, the
exception of the earliest item is the one raised, once the threads have stopped, and nothing
after that item is emitted. An interrupt (KeyboardInterrupt, SystemExit) stops everything at
once instead.
"""
import threading


class _Failed:
    """In place of a result: the exception its item raised."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


class _Pipeline:
    def __init__(self, items, work, emit, limit):
        self._items = iter(items)
        self._work = work
        self._emit = emit
        self._taking = threading.Lock()          # the iterator is not thread-safe
        self._taken = 0                          # sequence number of the next item taken
        self._exhausted = False
        self._room = threading.Semaphore(limit)  # items taken and not yet emitted
        self._order = threading.Lock()           # guards the fields below
        self._next = 0                           # sequence number of the next item emitted
        self._ready = {}                         # sequence number -> (item, result)
        self._emitting = False                   # a thread is emitting ready results
        self.error = None                        # what run_in_order raises
        self.stopped = threading.Event()

    def worker(self):
        """Take, work and emit items until the items end or something fails."""
        try:
            while self._room.acquire() and not self.stopped.is_set():
                taken = self._take()
                if taken is None:
                    break
                sequence, item, result = taken
                if result is None:
                    try:
                        result = self._work(item)
                    except Exception as exc:
                        result = _Failed(exc)
                self._deliver(sequence, item, result)
            self._room.release()        # the room this thread took last, or a stop's wake-up
        except BaseException as exc:    # an interrupt: stop now, whatever the order
            self._stop(exc)

    def _take(self):
        with self._taking:
            if self._exhausted:
                return None
            sequence = self._taken
            try:
                item = next(self._items)
            except StopIteration:
                self._exhausted = True
                return None
            except Exception as exc:
                self._exhausted = True
                item, result = None, _Failed(exc)
            else:
                result = None
            self._taken += 1
            return sequence, item, result

    def _deliver(self, sequence, item, result):
        with self._order:
            self._ready[sequence] = (item, result)
            if self._emitting:
                return                  # the emitting thread will come to it
            self._emitting = True
        while True:
            with self._order:
                ready = self._ready.pop(self._next, None)
                if ready is None or self.stopped.is_set():
                    if ready is not None:
                        self._ready[self._next] = ready     # left for discard()
                    self._emitting = False
                    return
                self._next += 1
            item, result = ready
            try:
                if isinstance(result, _Failed):
                    raise result.error
                self._emit(item, result)
            except BaseException as exc:
                with self._order:
                    self._emitting = False
                self._stop(exc)
                return
            finally:
                self._room.release()

    def _stop(self, exc):
        with self._order:
            first = self.error is None
            interrupt = not isinstance(exc, Exception)
            if first or (interrupt and isinstance(self.error, Exception)):
                self.error = exc
        self.stopped.set()
        self._room.release()        # wakes a thread waiting for room; each wakes the next

    def leftovers(self):
        """Results made but never emitted (after a failure)."""
        with self._order:
            left, self._ready = list(self._ready.values()), {}
        return [(item, result) for item, result in left if not isinstance(result, _Failed)]


def run_in_order(items, work, emit, threads, *, limit=None, discard=None):
    """Run ``work`` over ``items`` on ``threads`` threads; ``emit`` results in order.

    ``limit`` (default ``2 * threads``) bounds the items taken and not yet emitted.
    ``discard(item, result)`` is called for results never emitted because of a failure
    (to give back a buffer, say). Raises the first failure in item order.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    pipeline = _Pipeline(items, work, emit, limit or 2 * threads)
    helpers = [threading.Thread(target=pipeline.worker, name=f"streamexport-{number}",
                                daemon=True)
               for number in range(1, threads)]
    for thread in helpers:
        thread.start()
    try:
        pipeline.worker()
    finally:
        for thread in helpers:      # after a clean end here, they finish their last items
            _join(thread, pipeline)
        if discard is not None:
            for item, result in pipeline.leftovers():
                discard(item, result)
    if pipeline.error is not None:
        raise pipeline.error


def _join(thread, pipeline):
    """Join ``thread``; an interrupt meanwhile stops the pipeline and is raised after."""
    while True:
        try:
            thread.join()
            return
        except BaseException as exc:
            pipeline._stop(exc)
