"""Build the C core of streamexport.

Environment switches:
  STREAMEXPORT_REQUIRE_SPEEDUPS=1  a failed C build is an error (wheels, CI)
  STREAMEXPORT_DISABLE_SPEEDUPS=1  do not build the C core at all
  STREAMEXPORT_SANITIZE=1          build with AddressSanitizer and UBSan
  STREAMEXPORT_DEBUG=1             build with -O0 -g
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = "csrc"
SOURCES = sorted(
    os.path.join(CSRC, name) for name in os.listdir(CSRC) if name.endswith(".c")
)


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


def _compile_args():
    # IEEE arithmetic whatever CFLAGS says (these come after it): the digit kernels rely on
    # exact float64 steps, each rounded on its own (no fused multiply-add, which clang
    # allows by default), and a -ffast-math link adds a constructor that sets the whole
    # process to flush subnormals to zero, numpy's and Python's floats included.
    args = ["-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-fast-math",
            "-ffp-contract=off"]
    link = ["-fno-fast-math"]
    if _flag("STREAMEXPORT_DEBUG"):
        args += ["-O0", "-g"]
    else:
        args += ["-O3"]
    if _flag("STREAMEXPORT_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
        args += san + ["-O1", "-g"]
        link += san
    return args, link


class OptionalBuildExt(build_ext):
    """Build the extension; without a compiler, fall back to pure Python and say so."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # distutils raises several unrelated classes here
            self._fallback(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)

    def _fallback(self, exc):
        if _flag("STREAMEXPORT_REQUIRE_SPEEDUPS"):
            raise
        banner = "*" * 75
        sys.stderr.write(
            f"{banner}\nWARNING: the C core of streamexport could not be built ({exc}).\n"
            "Falling back to the pure-Python formatter: output is identical, but much slower.\n"
            f"{banner}\n"
        )


compile_args, link_args = _compile_args()
ext_modules = []
if not _flag("STREAMEXPORT_DISABLE_SPEEDUPS"):
    ext_modules.append(
        Extension(
            "streamexport._speedups",
            sources=SOURCES,
            include_dirs=[CSRC],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    )
    # verify's event loop (glue reading ijson's Python objects) and structure scan (se_scan.c)
    verify_dir = os.path.join(CSRC, "verify")
    ext_modules.append(
        Extension(
            "streamexport._verify_events",
            sources=sorted(os.path.join(verify_dir, name) for name in os.listdir(verify_dir)
                           if name.endswith(".c")),
            include_dirs=[verify_dir],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    )

    # the zip check's CRC-32: its own C core below a small glue file
    crc32_dir = os.path.join(CSRC, "crc32")
    ext_modules.append(
        Extension(
            "streamexport._crc32",
            sources=sorted(os.path.join(crc32_dir, name) for name in os.listdir(crc32_dir)
                           if name.endswith(".c")),
            include_dirs=[crc32_dir],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
