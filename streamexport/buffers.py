"""Output buffers the formatter writes into, reused from chunk to chunk.

A fresh buffer per chunk costs a page fault for every 4 KiB of text (1.25 GB of text is
300,000 faults, each zeroing a page), and the exporter formats chunk after chunk of about
the same size. So each chunk borrows a buffer from a ``BufferPool`` and gives it back once
its text is written: the pool holds at most as many buffers as chunks were in flight at once,
each as large as the largest chunk it served.

Buffers are private anonymous memory maps: page-aligned, writable through the buffer
protocol, and advised to use transparent huge pages where the kernel offers them.
"""
import mmap
import threading

_ROUND = 1 << 20    # sizes are rounded up so that chunks of nearly one size share buffers


class BufferPool:
    """``take(nbytes)`` a writable buffer of at least ``nbytes``; ``give_back`` it when done."""

    def __init__(self):
        self._free = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self, nbytes):
        with self._lock:
            buffer = self._free.pop() if self._free else None
        if buffer is not None and len(buffer) >= nbytes:
            return buffer
        if buffer is not None:
            buffer.close()      # too small for this chunk: replaced by a larger one
        return _new_buffer(nbytes)

    def give_back(self, buffer):
        with self._lock:
            if not self._closed:
                self._free.append(buffer)
                return
        _unmap(buffer)

    def close(self):
        """Unmap the free buffers; buffers given back later are unmapped at once."""
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        for buffer in free:
            _unmap(buffer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _unmap(buffer):
    try:
        buffer.close()
    except BufferError:     # a view of it is still alive (say, in a traceback): the
        pass                # garbage collector unmaps it when the last view goes


def _new_buffer(nbytes):
    size = max(_ROUND, -(-nbytes // _ROUND) * _ROUND)
    if hasattr(mmap, "MAP_PRIVATE"):
        # Private memory: mmap's default for an anonymous map is MAP_SHARED, which Linux
        # backs with shared memory (shmem): its first touch costs ~7x as much per page,
        # and huge pages do not apply to it.
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    else:
        buffer = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buffer.madvise(mmap.MADV_HUGEPAGE)
        except OSError:     # a hint: without huge pages the buffer works the same
            pass
    return buffer
