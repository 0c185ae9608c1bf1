"""The two libc calls Python's os module lacks, through ctypes: madvise on an address
(tensors.release_pages) and sync_file_range (writer). Each is None where it is missing,
and callers then skip what is only a hint to the kernel."""
import ctypes
import ctypes.util
import os
import sys


def _load():
    if os.name != "posix":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def _function(name, argtypes):
    try:
        function = getattr(_libc, name)
    except AttributeError:
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


_libc = _load()
madvise = _function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]) \
    if _libc is not None else None
sync_file_range = _function("sync_file_range",
                            [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]) \
    if _libc is not None and sys.platform.startswith("linux") else None
