"""The integrity check of a torch zip checkpoint: its structure and every record's CRC-32.

torch's reader maps storages by offset and never checks their CRC, so a bit flip in tensor
data would go unnoticed. ``check_zip`` reads the central directory and every record's local
header, and checks the CRC-32 of every record, so a corrupt file is refused with a one-line
``CheckpointError`` naming the file and the record.

The tensor data is nearly all of the file, and its CRC pass need not come first: with
``defer_data=True`` the small records (the pickle, the version) are checked at once -- they
are read before anything else -- and the data records are returned as a ``DataCheck`` that
runs on threads of its own while the caller formats, over read-only mappings of the file,
without copying it; the caller may ``claim`` the records it reads whole anyway (a tensor
that is its whole storage) and feed it their bytes as it goes, while they are in cache, so
that the threads check only the rest. The caller must ``wait()`` for it before it publishes
anything read from the data. Records whose CRC field is 0 were written with torch's CRC-32
turned off (``torch.serialization.set_crc32_options(False)``): only their headers are
checked.

The data CRC is streamexport._crc32's (carry-less multiply folding, the same values as
zlib.crc32; zlib's own where the C core is not built): on a 256 MB mapped file it ran at
12.8 GB/s against zlib's 2.7 (medians, AVX-512 machine, 2026-11), as fast as one thread
reads memory there, which leaves the CPU to the formatter threads.
"""
import mmap
import struct
import threading
import zipfile
import zlib

from .errors import CheckpointError


def _crc32_combine(crc_a, crc_b, length_b):
    """The CRC-32 of A then B from those of A and B and B's length: the pure-Python twin of
    _crc32.combine (csrc/crc32/se_crc32.c has the arithmetic), for when it is not built."""
    def times(a, b):                      # a * b mod P, reflected
        product = 0
        for i in range(32):
            if a & (0x80000000 >> i):
                product ^= b
            b = (b >> 1) ^ (0xEDB88320 if b & 1 else 0)
        return product
    result, power = 0x80000000, 0x00800000   # 1 and x^8
    while length_b:
        if length_b & 1:
            result = times(result, power)
        power = times(power, power)
        length_b >>= 1
    return times(result, crc_a) ^ crc_b


try:
    from ._crc32 import combine as crc32_combine
    from ._crc32 import crc32
except ImportError:     # no C core built: zlib's gives the same values
    from zlib import crc32
    crc32_combine = _crc32_combine

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")   # signature, version, flags ... name, extra length
_ENCRYPTED, _PATCHED, _STRONG_ENCRYPTION, _UTF8_NAME = 0x1, 0x20, 0x40, 0x800
_SLICE = 8 << 20     # bytes checked per crc32 call; their pages are dropped after it
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


def check_zip(path, defer_data=False):
    """Check ``path``'s zip structure and CRC-32s; with ``defer_data``, return a DataCheck
    for the tensor data records (not yet started), else None once everything is checked."""
    record = None
    deferred = []
    try:
        with zipfile.ZipFile(path) as archive:
            headers = _LocalHeaders(archive.fp)
            for info in archive.infolist():
                record = info.filename
                if defer_data and info.CRC != 0 and _is_stored_data(info):
                    deferred.append((record, headers.data_offset(info), info.compress_size,
                                     info.CRC))
                    continue
                with archive.open(info) as member:   # checks the local header
                    while info.CRC != 0 and member.read(1 << 20):
                        pass
    except zipfile.BadZipFile as exc:
        cause = str(exc)
        if cause.startswith("Bad CRC-32"):
            raise _crc_error(path, record) from None
        if cause == "File is not a zip file":
            cause = "no end-of-central-directory record"
        raise _fail(path, f"corrupt or truncated zip archive ({cause})") from None
    except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error) as exc:
        where = f" in record {record}" if record else ""
        raise _fail(path, f"corrupt or truncated zip archive{where} ({type(exc).__name__}: "
                          f"{exc})") from None
    return DataCheck(path, deferred) if defer_data else None


def _is_stored_data(info):
    """A tensor storage written uncompressed, as torch.save writes every one."""
    return "/data/" in info.filename and info.compress_type == zipfile.ZIP_STORED


class _LocalHeaders:
    """The local headers of a zip's records, read from the file in one pass.

    What ``ZipFile.open`` checks of a record before its data, without the file object it
    makes (~20 us a record, most of the check of a checkpoint of 20,000 small tensors): the
    header is whole and signed, its name is the central directory's, and no flag asks for
    something this reader cannot do."""

    _READ = 1 << 16

    def __init__(self, fp):
        self._fp = fp
        self._start = self._end = 0
        self._buffer = b""

    def _bytes(self, offset, size):
        """The file's bytes [offset, offset + size), fewer at its end; records come in file
        order, so one read serves the headers of many small ones."""
        if offset < self._start or offset + size > self._end:
            self._fp.seek(offset)
            self._buffer = self._fp.read(max(size, self._READ))
            self._start, self._end = offset, offset + len(self._buffer)
        return self._buffer[offset - self._start:offset - self._start + size]

    def data_offset(self, info):
        """Where the record's bytes begin, after its checked local header."""
        header = self._bytes(info.header_offset, _LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            raise zipfile.BadZipFile("Truncated file header")
        fields = _LOCAL_HEADER.unpack(header)
        if fields[0] != b"PK\x03\x04":
            raise zipfile.BadZipFile("Bad magic number for file header")
        if info.flag_bits & (_ENCRYPTED | _PATCHED | _STRONG_ENCRYPTION):
            raise NotImplementedError(f"record flags {info.flag_bits:#06x} (encrypted or "
                                      "patched data)")
        name_length, extra_length = fields[-2], fields[-1]
        begin = info.header_offset + _LOCAL_HEADER.size
        name = self._bytes(begin, name_length)
        # decoded as ZipFile.open does: UTF-8 when the header's flag says so, else cp437
        name = name.decode("utf-8" if fields[2] & _UTF8_NAME else "cp437")
        if name != info.orig_filename:
            raise zipfile.BadZipFile(f"File name in directory {info.orig_filename!r} and "
                                     f"header {name!r} differ.")
        return begin + name_length + extra_length


def _fail(path, cause):
    return CheckpointError(f"{path}: {cause}")


def _crc_error(path, record):
    return _fail(path, f"corrupt zip archive: record {record} fails its CRC-32 check")


class DataCheck:
    """The CRC-32 check of a zip's data records: ``start()`` it, then ``wait()``.

    ``start(threads)`` shares the records out among that many threads (each record has its
    own CRC, so they split without any combining); a check never started runs on one thread
    when it is waited for. ``wait`` raises the CheckpointError the
    check found, once it is done (the first corrupt record in file order, whatever thread
    found it); ``error()`` waits and returns it instead (None if the data is sound);
    ``close`` stops the check early and leaves ``wait`` reporting nothing more.

    ``claim(offset, size)`` hands one record not yet taken by a thread to the caller, who
    feeds its bytes in order to the ``RecordCRC`` it gets (the exporter does, chunk by
    chunk, while each chunk is still in cache: no second pass over memory, no thread
    competing with the formatting ones). A claim not fed to its end when ``error()`` is
    called -- the export stopped early -- is checked there, from the file.
    """

    def __init__(self, path, records):
        self.path = path
        self._records = records       # (name, offset, size, expected CRC-32), in file order
        self._by_offset = {record[1]: index for index, record in enumerate(records)}
        self._next = 0                # records before this one are taken by threads
        self._claims = {}             # record index -> its RecordCRC
        self._errors = {}             # record index -> CheckpointError
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def start(self, threads=1):
        for _ in range(max(1, min(threads, len(self._records)))):
            thread = threading.Thread(target=self._run, name="streamexport-crc32", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait(self):
        error = self.error()
        if error is not None:
            raise error

    def error(self):
        if not self._threads and not self._stop.is_set():
            self.start()
        for thread in self._threads:
            thread.join()
        with self._lock:
            unsettled = [index for index, claim in self._claims.items() if not claim.settled]
        if unsettled and not self._stop.is_set():
            self._check(unsettled)
            with self._lock:
                for index in unsettled:
                    self._claims[index].settled = True
        return self._errors[min(self._errors)] if self._errors else None

    def claim(self, offset, size):
        """A RecordCRC for the record whose bytes are [offset, offset + size) of the file,
        or None when there is none, a thread has taken it, or it is claimed already."""
        with self._lock:
            index = self._by_offset.get(offset)
            if index is None or index < self._next or index in self._claims \
                    or self._stop.is_set() or self._records[index][2] != size:
                return None
            claim = self._claims[index] = RecordCRC(self, index, size, self._records[index][3])
            return claim

    def _settle(self, index, sound):
        with self._lock:
            self._claims[index].settled = True
            if not sound:
                self._errors[index] = _crc_error(self.path, self._records[index][0])

    def close(self):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _take(self):
        with self._lock:
            while self._next in self._claims:
                self._next += 1
            index = self._next
            self._next += 1
        return index if index < len(self._records) and not self._stop.is_set() else None

    def _failed(self, index, error):
        with self._lock:
            self._errors[index] = error

    def _run(self):
        self._check(iter(self._take, None))

    def _check(self, indices):
        """Check the records of ``indices`` (an iterable, read as it goes) from the file."""
        index = -1
        try:
            with open(self.path, "rb") as file, \
                    mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped, \
                    memoryview(mapped) as whole:
                for index in indices:
                    if not self._record_is_sound(mapped, whole, *self._records[index]):
                        self._failed(index, _crc_error(self.path, self._records[index][0]))
        except CheckpointError as exc:
            self._failed(index, exc)
        except (OSError, ValueError) as exc:   # the file changed or vanished meanwhile
            self._failed(-1, _fail(self.path, f"cannot read the tensor data "
                                              f"({type(exc).__name__}: {exc})"))

    def _record_is_sound(self, mapped, whole, name, offset, size, expected):
        if offset + size > len(mapped):
            raise _fail(self.path, f"truncated zip archive: record {name} ends past the end "
                                   "of the file")
        crc = 0
        for begin in range(offset - offset % _SLICE, offset + size, _SLICE):
            if self._stop.is_set():
                return True                     # closed early: nothing to report
            with whole[max(begin, offset):min(begin + _SLICE, offset + size)] as piece:
                crc = crc32(piece, crc)         # releases the GIL
            if _DONTNEED is not None:   # this mapping's pages only: the file stays cached
                mapped.madvise(_DONTNEED, begin, min(_SLICE, len(mapped) - begin))
        return crc == expected


class RecordCRC:
    """The CRC-32 of one claimed record (``DataCheck.claim``), given its bytes in order:
    ``feed(data)``, or ``add(part(data))`` where ``part`` may run on any thread (the
    exporter's formatting threads, each on the chunk it just read) and ``add`` runs in order
    (the writer's). The verdict comes with the last byte."""

    __slots__ = ("_check", "_index", "_size", "_expected", "_crc", "_fed", "settled")

    def __init__(self, check, index, size, expected):
        self._check, self._index, self._size, self._expected = check, index, size, expected
        self._crc = 0
        self._fed = 0
        self.settled = False

    @staticmethod
    def part(data):
        """(CRC-32, length) of a bytes-like object: one piece of a record."""
        with memoryview(data) as view:
            return crc32(view), view.nbytes

    def add(self, part):
        """The next piece of the record, as ``part`` gave it."""
        crc, nbytes = part
        self._crc = crc32_combine(self._crc, crc, nbytes)
        self._fed += nbytes
        if self._fed >= self._size:
            self._check._settle(self._index, self._fed == self._size and
                                self._crc == self._expected)

    def feed(self, data):
        """The record's next bytes."""
        self.add(self.part(data))
