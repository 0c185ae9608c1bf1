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


@pytest.fixture(params=["c", "python"])
def format_chunk(request):
    """Each formatter test runs against the C core and its pure-Python twin."""
    impl = IMPLEMENTATIONS.get(request.param)
    if impl is None:
        pytest.skip("the C core is not built")
    return impl
