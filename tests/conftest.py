import pytest

from streamexport import _native

try:
    from streamexport import _speedups
except ImportError:  # the pure-Python build: the C twin's tests are skipped, not faked
    _speedups = None


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="run the long exhaustive checks too")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long exhaustive checks, run with --slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="needs --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


IMPLEMENTATIONS = {"python": _native.format_chunk}
if _speedups is not None:
    IMPLEMENTATIONS["c"] = _speedups.format_chunk


@pytest.fixture(params=["c", "c-avx2", "c-scalar", "python"])
def format_chunk(request):
    """Each formatter test runs against the C core, the C core with its AVX-512 path turned
    off (its AVX2 one then runs, as on CPUs without AVX-512), with every vector path turned
    off (so all paths are tested on one machine), and the pure-Python twin."""
    impl = IMPLEMENTATIONS.get(request.param.split("-")[0])
    if impl is None:
        pytest.skip("the C core is not built")
    if request.param == "c-avx2":
        if not (_speedups.simd() and _speedups.simd_avx2()):
            pytest.skip("no AVX-512 path to turn off, or no AVX2: 'c' already tests this one")
        previous = _speedups.set_simd_avx512(False)
        request.addfinalizer(lambda: _speedups.set_simd_avx512(previous))
    if request.param == "c-scalar":
        if not (_speedups.simd() or _speedups.simd_avx2()):
            pytest.skip("no vector path on this CPU: 'c' already tests the scalar one")
        _speedups.set_simd(False)
        request.addfinalizer(lambda: _speedups.set_simd(True))  # every path that was on
    return impl
