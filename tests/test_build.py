"""setup.py: without a C compiler the package still builds, pure Python, and says so; an sdist
carries everything the C core needs."""
import os
import shutil
import subprocess
import sys
import tarfile

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
    # these tests build the C core: a STREAMEXPORT_DISABLE_SPEEDUPS=1 of the whole run (the
    # README's way to test the pure-Python formatter) would make setup.py skip it
    inherited = {k: v for k, v in os.environ.items() if k != "STREAMEXPORT_DISABLE_SPEEDUPS"}
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=directory,
                          capture_output=True, text=True, timeout=300,
                          env={**inherited, "CC": "false", **env})


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


def test_sdist_carries_what_the_c_core_needs(tmp_path):
    """Built from its sdist, as pip builds a package it has no wheel for, the C core compiles
    (the sdist once left out every header: such an install fell back to pure Python), and
    the sdist holds every tracked file of csrc/, scripts/ (the tables' generators) and tests/."""
    if not os.path.isdir(os.path.join(ROOT, ".git")) or shutil.which("git") is None:
        pytest.skip("needs a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    source = tmp_path / "source"
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), source / name)
    made = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")],
                          cwd=source, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    (archive,) = (tmp_path / "dist").iterdir()
    with tarfile.open(archive) as sdist:
        sdist.extractall(tmp_path / "unpacked")
        top = sdist.getnames()[0].split("/")[0]
        carried = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = [n for n in tracked if n.split("/")[0] in ("csrc", "scripts", "tests")]
    assert [n for n in needed if n not in carried] == []
    built = build(tmp_path / "unpacked" / top, CC=os.environ.get("CC", "cc"),
                  STREAMEXPORT_REQUIRE_SPEEDUPS="1", STREAMEXPORT_DEBUG="1")   # -O0: quick
    assert built.returncode == 0, built.stderr
    libraries = sorted(n.split(".")[0] for n in os.listdir(tmp_path / "unpacked" / top /
                                                         "streamexport") if n.endswith(".so"))
    assert libraries == ["_crc32", "_speedups", "_verify_events"]
