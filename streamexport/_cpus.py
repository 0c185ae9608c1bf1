"""How many CPUs this process may run on (its affinity mask, not the machine's count)."""
import os


def usable_cpu_count():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
