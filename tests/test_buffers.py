"""The pool of output buffers the exporter reuses from chunk to chunk."""
import ctypes
import os

import pytest

from streamexport.buffers import BufferPool


def test_a_buffer_given_back_is_taken_again():
    with BufferPool() as pool:
        first = pool.take(1000)
        first[:5] = b"hello"
        pool.give_back(first)
        again = pool.take(1000)
        assert again is first
        assert len(again) >= 1000


def test_a_larger_request_replaces_a_buffer_too_small_for_it():
    with BufferPool() as pool:
        small = pool.take(10)
        size = len(small)
        pool.give_back(small)
        big = pool.take(size + 1)
        assert big is not small and len(big) > size
        assert small.closed
        pool.give_back(big)
        assert pool.take(10) is big     # a large buffer serves a small chunk too


def test_the_pool_never_holds_more_buffers_than_were_out_at_once():
    with BufferPool() as pool:
        taken = [pool.take(100) for _ in range(3)]
        for buffer in taken:
            pool.give_back(buffer)
        again = [pool.take(100) for _ in range(4)]
        assert len({id(b) for b in again} & {id(b) for b in taken}) == 3


def test_close_unmaps_free_buffers_and_later_returns():
    pool = BufferPool()
    free, out = pool.take(10), pool.take(10)
    pool.give_back(free)
    pool.close()
    assert free.closed and not out.closed
    pool.give_back(out)
    assert out.closed


def test_close_leaves_a_buffer_with_a_live_view_to_the_garbage_collector():
    pool = BufferPool()
    buffer = pool.take(10)
    view = memoryview(buffer)
    pool.give_back(buffer)
    pool.close()              # no BufferError: the view still uses the memory
    view[0] = 7
    assert view[0] == 7
    view.release()


def test_buffers_are_writable_through_the_buffer_protocol():
    with BufferPool() as pool:
        buffer = pool.take(4096)
        with memoryview(buffer) as view:
            assert not view.readonly and view.c_contiguous
            view[:3] = b"abc"
        pool.give_back(buffer)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_buffers_are_private_memory_not_shared_memory():
    """A shared anonymous map is shmem on Linux, several times slower to fault in."""
    pool = BufferPool()
    buffer = pool.take(3 << 20)
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            low, high = (int(x, 16) for x in span.split("-"))
            if low <= address < high:
                break
        else:
            pytest.fail("the buffer is not in /proc/self/maps")
    assert perms.startswith("rw") and perms[3] == "p", line
    pool.give_back(buffer)
    pool.close()
