"""From tensors to the formatter's buffers, and the release of mapped pages behind the export."""
import mmap

import numpy as np
import pytest
import torch

from streamexport import tensors
from streamexport.tensors import PagesBehind, as_buffer, iter_chunk_data, iter_chunks


def cases():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(6, 5, generator=g)
    yield "contiguous", base
    yield "transposed", base.t()
    yield "strided", base[:, ::2]
    yield "expanded", torch.randn(1, 5, generator=g).expand(4, 5)
    yield "zero-dim", torch.tensor(2.5)
    yield "negative view", torch._neg_view(base)
    yield "bfloat16", base.to(torch.bfloat16)
    yield "bool", base > 0


@pytest.mark.parametrize("name,tensor", list(cases()))
@pytest.mark.parametrize("chunk", [1, 4, 7, 1000])
def test_chunk_data_is_the_chunks_as_buffers(name, tensor, chunk):
    dtype = tensors.formatter_dtype(tensor)
    expected = [(start, as_buffer(block, dtype)) for start, block in
                iter_chunks(tensor, dtype, chunk)]
    got = list(iter_chunk_data(tensor, dtype, chunk))
    assert [start for start, _ in got] == [start for start, _ in expected]
    for (_, data), (_, want) in zip(got, expected):
        assert data.flags.c_contiguous and data.dtype == want.dtype
        assert np.array_equal(data, want)


def resident_bytes(address):
    """Rss of the mapping holding ``address``, from /proc/self/smaps."""
    with open("/proc/self/smaps") as smaps:
        inside = False
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                low, high = (int(x, 16) for x in head.split("-"))
                inside = low <= address < high
            elif inside and head == "Rss:":
                return int(line.split()[1]) * 1024
    raise AssertionError("no mapping holds the address")


@pytest.mark.skipif(tensors._madvise is None, reason="no madvise here")
@pytest.mark.filterwarnings("ignore:The given buffer is not writable")
def test_pages_behind_the_export_leave_memory_in_steps(tmp_path):
    # The kernel may map the file in large folios and drop a whole one when part of it is
    # released, so the test checks what must hold: nothing before a step has gathered,
    # less after each step, nothing at the end, and the data reads back the same.
    path = tmp_path / "data.bin"
    size = 1024 * mmap.PAGESIZE
    path.write_bytes(np.arange(size // 4, dtype=np.float32).tobytes())
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    tensor = torch.frombuffer(mapped, dtype=torch.float32)
    try:
        expected = tensor.clone()
        address = tensor.data_ptr()
        assert resident_bytes(address) == size      # every page read by the clone
        step = 64 * mmap.PAGESIZE
        pages = PagesBehind(tensor, step=step)
        pages.passed(step // 4 - 1)                 # less than a step: nothing yet
        assert resident_bytes(address) == size
        resident = [size]
        for end in range(step // 4, tensor.numel(), step // 4):
            pages.passed(end)
            resident.append(resident_bytes(address))
        assert resident[-1] < resident[0] and resident == sorted(resident, reverse=True)
        pages.passed(tensor.numel())                # the end releases the rest
        assert resident_bytes(address) == 0
        assert torch.equal(tensor, expected)        # the pages fault back in from the file
    finally:
        del tensor
        mapped.close()
