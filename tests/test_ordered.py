"""The exporter's pipeline: work on several threads, results emitted in item order."""
import random
import threading
import time

import pytest

from streamexport.ordered import run_in_order


def _jittery(seed):
    """A work function whose items finish out of order: random short sleeps."""
    rng = random.Random(seed)
    delays = [rng.random() * 0.002 for _ in range(1000)]

    def work(item):
        time.sleep(delays[item % len(delays)])
        return item * item
    return work


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_results_come_out_in_item_order(threads):
    emitted = []
    run_in_order(range(300), _jittery(threads), lambda item, result: emitted.append((item, result)),
                 threads)
    assert emitted == [(item, item * item) for item in range(300)]


def test_no_items_emits_nothing():
    emitted = []
    run_in_order(iter(()), lambda item: item, lambda item, result: emitted.append(item), 2)
    assert emitted == []


@pytest.mark.parametrize("threads,limit", [(1, None), (2, None), (3, 2), (4, 5)])
def test_items_in_flight_stay_within_the_limit(threads, limit):
    lock = threading.Lock()
    state = {"taken": 0, "emitted": 0, "most": 0}

    def items():
        for item in range(200):
            with lock:
                state["taken"] += 1
                state["most"] = max(state["most"], state["taken"] - state["emitted"])
            yield item

    def emit(item, result):
        with lock:
            state["emitted"] += 1

    run_in_order(items(), _jittery(7), emit, threads, limit=limit)
    assert state["emitted"] == 200
    assert 1 <= state["most"] <= (limit or 2 * threads)


def test_emit_is_never_called_on_two_threads_at_once():
    inside = []
    overlaps = []

    def emit(item, result):
        inside.append(item)
        if len(inside) > 1:
            overlaps.append(tuple(inside))
        time.sleep(0.0005)
        inside.remove(item)

    run_in_order(range(200), _jittery(3), emit, 4)
    assert overlaps == []


def test_work_runs_in_parallel():
    """Two items of work that each wait for the other can only finish on two threads."""
    barrier = threading.Barrier(2, timeout=10)

    def work(item):
        barrier.wait()
        return item

    emitted = []
    run_in_order(range(4), work, lambda item, result: emitted.append(result), 2)
    assert emitted == [0, 1, 2, 3]


def test_the_earliest_failure_wins_and_nothing_after_it_is_emitted():
    def work(item):
        if item == 5:
            time.sleep(0.02)        # fails later in time than item 8 does
            raise ValueError("item 5")
        if item == 8:
            raise KeyError("item 8")
        return item

    emitted = []
    with pytest.raises(ValueError, match="item 5"):
        run_in_order(range(50), work, lambda item, result: emitted.append(item), 4)
    assert emitted == [0, 1, 2, 3, 4]


def test_a_failing_iterator_fails_in_its_place():
    def items():
        yield from range(6)
        raise OSError("the source broke")

    emitted = []
    with pytest.raises(OSError, match="the source broke"):
        run_in_order(items(), _jittery(1), lambda item, result: emitted.append(item), 3)
    assert emitted == [0, 1, 2, 3, 4, 5]


def test_a_failing_emit_stops_the_pipeline():
    emitted = []

    def emit(item, result):
        if item == 10:
            raise OSError("disk full")
        emitted.append(item)

    taken = []

    def items():
        for item in range(10_000):
            taken.append(item)
            yield item

    with pytest.raises(OSError, match="disk full"):
        run_in_order(items(), _jittery(2), emit, 3)
    assert emitted == list(range(10))
    assert len(taken) <= 10 + 1 + 2 * 3     # it stopped taking items soon after


def test_results_never_emitted_are_discarded():
    made, given_back = [], []
    lock = threading.Lock()

    def work(item):
        if item == 3:
            time.sleep(0.01)
            raise RuntimeError("bad chunk")
        with lock:
            made.append(item)
        return item

    def emit(item, result):
        pass

    with pytest.raises(RuntimeError, match="bad chunk"):
        run_in_order(range(100), work, emit, 4, limit=8,
                     discard=lambda item, result: given_back.append(result))
    # Everything made after the failing item was given back, nothing before it was.
    assert sorted(given_back) == sorted(item for item in made if item > 3)


def test_an_interrupt_in_a_helper_thread_stops_everything():
    def work(item):
        if item == 20 and threading.current_thread() is not threading.main_thread():
            raise KeyboardInterrupt
        return item

    emitted = []
    # The main thread may take item 20 itself; then nothing is interrupted and all is emitted.
    try:
        run_in_order(range(10_000), work, lambda item, result: emitted.append(item), 2)
    except KeyboardInterrupt:
        assert len(emitted) < 10_000
        assert emitted == list(range(len(emitted)))
    else:
        assert emitted == list(range(10_000))


def test_an_interrupt_beats_an_earlier_failure():
    def work(item):
        if item == 0:
            time.sleep(0.05)
            raise ValueError("slow failure")
        if item == 1:
            raise KeyboardInterrupt
        return item

    with pytest.raises(KeyboardInterrupt):
        run_in_order(range(10), work, lambda item, result: None, 2)


def test_threads_must_be_positive():
    with pytest.raises(ValueError, match="threads must be at least 1"):
        run_in_order(range(3), lambda item: item, lambda item, result: None, 0)
