"""setup.py: without a C compiler the package still builds, pure Python, and says so."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def source_copy(tmp_path):
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("not run from a source checkout")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    for name in ("csrc", "streamexport"):
        shutil.copytree(os.path.join(ROOT, name), tmp_path / name,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return tmp_path


def build(directory, **env):
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=directory,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CC": "false", **env})


def test_no_compiler_falls_back_with_a_banner(source_copy):
    result = build(source_copy)
    assert result.returncode == 0, result.stderr
    assert "Falling back to the pure-Python formatter" in result.stderr
    assert not [n for n in os.listdir(source_copy / "streamexport") if n.endswith(".so")]
    probe = subprocess.run([sys.executable, "-c", "import streamexport.formatter as f; "
                            "print(f.IMPLEMENTATION)"], cwd=source_copy, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(source_copy)})
    assert probe.stdout.strip() == "python", probe.stderr


def test_required_speedups_turn_the_fallback_into_an_error(source_copy):
    result = build(source_copy, STREAMEXPORT_REQUIRE_SPEEDUPS="1")
    assert result.returncode != 0
