"""The command line of the header generators: write the header, or with --check fail if the
checked-in one differs from what the generator makes now."""
import os
import sys


def write_or_check(argv, path, text, script):
    """path: the header; text: its contents now; script: the generator, for the message."""
    if "--check" in argv:
        with open(path) as f:
            if f.read() != text:
                name = os.path.relpath(path, os.path.join(os.path.dirname(script), ".."))
                sys.exit(f"{name} is stale: run python scripts/{os.path.basename(script)}")
        return
    with open(path, "w") as f:
        f.write(text)
