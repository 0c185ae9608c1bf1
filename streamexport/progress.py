"""Progress of an export, for a person at a terminal or for a CI log.

``progress_for(kind, total)`` gives an object with ``update(elements)`` and ``close()``:
``"bar"`` is a tqdm bar (at a terminal); ``"log"`` writes a plain line to stderr every
``LOG_INTERVAL`` seconds -- a CI log keeps no carriage returns, and a job silent for long
may be taken for hung -- and nothing at all for an export shorter than that.
"""
import sys
import time

LOG_INTERVAL = 30.0


def progress_for(kind, total, unit="elements", what=""):
    """A progress display of ``kind`` over ``total`` units; ``what`` names the work in the
    log's lines ("verify: ")."""
    if kind == "bar":
        from tqdm import tqdm
        return tqdm(total=total, unit=f" {unit}", unit_scale=True, leave=False,
                    dynamic_ncols=True, desc=what.rstrip(": ") or None)
    if kind == "log":
        return LogProgress(total, unit=unit, what=what)
    raise ValueError(f"progress must be 'bar', 'log' or None, not {kind!r}")


def check_kind(progress):
    """The progress kind an API argument asks for: None, "bar" (True too) or "log"."""
    if progress is True:
        return "bar"
    if progress not in (None, False, "bar", "log"):
        raise ValueError(f"progress must be None, 'bar' or 'log', not {progress!r}")
    return progress or None


class LogProgress:
    """``streamexport: 41% (25,165,824 of 61,354,752 elements) in 30 s, about 43 s left``"""

    def __init__(self, total, interval=None, stream=None, clock=time.monotonic,
                 unit="elements", what=""):
        self.total = total
        self.unit = unit
        self.what = what
        self.done = 0
        self._interval = LOG_INTERVAL if interval is None else interval
        self._stream = stream
        self._clock = clock
        self._start = clock()
        self._next = self._start + self._interval

    def update(self, elements):
        self.done += elements
        now = self._clock()
        if now >= self._next:
            self._next = now + self._interval
            stream = self._stream or sys.stderr
            print(f"streamexport: {self.what}{self.line(now - self._start)}", file=stream,
                  flush=True)

    def line(self, elapsed):
        share = self.done / self.total if self.total else 1.0
        text = (f"{share:.0%} ({self.done:,} of {self.total:,} {self.unit}) in "
                f"{_duration(elapsed)}")
        if 0 < share < 1:
            text += f", about {_duration(elapsed * (1 - share) / share)} left"
        return text

    def close(self):
        pass


def _duration(seconds):
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
