"""The ``streamexport`` command: export, verify, script.

Errors the user can cause print one line, ``streamexport: error: <file>: <cause>``, and exit 1
(2 for usage errors, 130 on SIGINT, 143 on SIGTERM); ``--debug`` adds the traceback and lets
library warnings through.
"""
import argparse
import os
import signal
import sys
import traceback
import warnings

from . import __version__
from ._cpus import usable_cpu_count
from .errors import StreamExportError

EXIT_ERROR = 1
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so every ``finally`` and ``with`` cleans up."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _say(message):
    sys.stderr.write(f"streamexport: {message}\n")
    sys.stderr.flush()


# ---- argument parsing -----------------------------------------------------------------

def _add_name_rules(parser):
    parser.add_argument("--key", metavar="A.B",
                        help="take the state_dict at this dotted path of the checkpoint")
    parser.add_argument("--keep-prefix", action="store_true",
                        help="keep a leading 'module.' (stripped by default, as TorchLean does)")
    parser.add_argument("--strip-prefix", action="append", default=[], metavar="P",
                        help="strip this leading prefix too (repeatable, applied in order)")


def _add_common(parser):
    parser.add_argument("--quiet", "-q", action="store_true", help="print errors only")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and library warnings")


def _add_jobs(parser):
    parser.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                        help="processes that verify parts of a large output at once, one per "
                             "256 MB at most (default: the usable CPU count)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="streamexport",
        description="Stream PyTorch checkpoints into TorchLean's JSON, exactly and in bounded memory.")
    parser.add_argument("--version", action="version", version=f"streamexport {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    ex = commands.add_parser("export", help="export a checkpoint to TorchLean JSON",
                             description="Export CHECKPOINT to TorchLean JSON at OUTPUT ('-': stdout).")
    ex.add_argument("checkpoint", metavar="CHECKPOINT",
                    help=".pt/.pth/.bin/.ckpt, .safetensors, a *.index.json or a checkpoint directory")
    ex.add_argument("output", metavar="OUTPUT", help="the JSON file to write, or - for stdout")
    _add_name_rules(ex)
    ex.add_argument("--include", action="append", default=[], metavar="GLOB",
                    help="export only names matching GLOB (repeatable)")
    ex.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                    help="leave out names matching GLOB (repeatable)")
    ex.add_argument("--no-meta", action="store_true", help='write only {"params": ...}')
    ex.add_argument("--strict", action="store_true", help="non-tensor entries are an error")
    ex.add_argument("--unsafe-load", action="store_true",
                    help="torch.load with weights_only=False: RUNS PICKLE CODE from the file")
    ex.add_argument("--safe-global", action="append", default=[], metavar="MODULE.NAME",
                    help="allow this pickled global under weights_only as an inert stand-in: its "
                         "code never runs and its value is skipped (repeatable; a bare name such as "
                         "eval means builtins.eval; tensor subclasses need --unsafe-load)")
    ex.add_argument("--float-format", choices=("exact", "shortest"), default="exact",
                    help="exact: repr of the float64 value, as TorchLean's adapter (default); "
                         "shortest: shortest text that round-trips at the tensor's dtype")
    ex.add_argument("--nonfinite", choices=("error", "null", "string", "literal"), default="error",
                    help="what to do with NaN/Infinity (default: error)")
    ex.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                    help="formatting threads (default: the usable CPU count)")
    ex.add_argument("--no-fsync", dest="fsync", action="store_false",
                    help="do not wait for the output to reach the disk before renaming it into "
                         "place (faster; a crash soon after may leave an empty or partial file)")
    ex.add_argument("--no-space-check", dest="space_check", action="store_false",
                    help="start even when the output, sampled beforehand, looks larger than "
                         "its file system's free space")
    ex.add_argument("--verify", action="store_true",
                    help="re-read the output and check it against the checkpoint")
    _add_jobs(ex)
    _add_common(ex)

    ve = commands.add_parser("verify", help="check an export against its contract and checkpoint",
                             description="Re-read OUTPUT incrementally and check it.")
    ve.add_argument("output", metavar="OUTPUT", help="the JSON file an export wrote")
    ve.add_argument("--against", metavar="CHECKPOINT", help="compare every value with this checkpoint")
    _add_name_rules(ve)
    ve.add_argument("--float-format", choices=("exact", "shortest"), default=None,
                    help="the float format of OUTPUT (default: detected)")
    _add_jobs(ve)
    ve.add_argument("--all-failures", action="store_true",
                    help="report every failure, not only the first")
    ve.add_argument("--allow-slow-backend", action="store_true",
                    help="run even if ijson's C backend (yajl2_c) is not available")
    _add_common(ve)

    sc = commands.add_parser("script", help="write a standalone export script (stdlib + torch)",
                             description="Write a self-contained export script that needs only torch.")
    sc.add_argument("-o", "--output", metavar="FILE", help="write the script here (default: stdout)")
    sc.add_argument("--function-name", default="export_state_dict_json", metavar="NAME",
                    type=_script_option("validate_function_name"),
                    help="name of the export function (default: export_state_dict_json)")
    sc.add_argument("--keep-prefix", action="store_true", help="keep a leading 'module.'")
    sc.add_argument("--no-meta", action="store_true", help='write only {"params": ...}')
    sc.add_argument("--weights-only", default="True", metavar="BOOL",
                    type=_script_option("parse_weights_only"),
                    help="True or False (False runs pickle code; the script warns on every run)")
    _add_common(sc)
    return parser


def _script_option(check_name):
    """An argparse type that runs one of streamexport.script's validators (exit 2 on error)."""
    def convert(text):
        from . import script
        try:
            getattr(script, check_name)(text)
        except script.ScriptOptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return convert


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


# ---- commands -------------------------------------------------------------------------

def _run_export(args):
    from .export import export
    if args.unsafe_load:
        _say(f"WARNING: --unsafe-load runs any code pickled in {args.checkpoint}; "
             "use it only on files you trust")
    progress = _progress_kind(args)
    report = export(
        args.checkpoint, args.output, key=args.key, keep_prefix=args.keep_prefix,
        strip_prefixes=args.strip_prefix, include=args.include, exclude=args.exclude,
        no_meta=args.no_meta, strict=args.strict, unsafe_load=args.unsafe_load,
        safe_globals=args.safe_global, float_format=args.float_format,
        nonfinite=args.nonfinite, threads=args.threads, progress=progress, fsync=args.fsync,
        space_check=args.space_check)
    if not args.quiet:
        from . import formatter
        if formatter.IMPLEMENTATION != "c":     # said after the work, so an error stays one line
            _say("warning: the C core is not built; this export used the slow pure-Python "
                 "formatter (pip install again with a C compiler present)")
        for warning in report.warnings:
            _say(f"warning: {warning}")
        if report.skipped:
            shown = ", ".join(report.skipped[:5])
            more = f" and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""
            _say(f"skipped {len(report.skipped)} non-tensor entr"
                 f"{'y' if len(report.skipped) == 1 else 'ies'}: {shown}{more}")
        _say(report.summary())
    if args.verify:
        if args.output == "-":
            raise StreamExportError("--verify needs an output file, not stdout")
        return _verify_and_report(args.output, args.checkpoint, args, args.float_format)
    return 0


def _run_verify(args):
    return _verify_and_report(args.output, args.against, args, args.float_format)


def _progress_kind(args):
    """A bar at a terminal; in a log (CI), a plain line every 30 s of a long run."""
    if args.quiet:
        return None
    return "bar" if sys.stderr.isatty() else "log"


def _verify_and_report(output, against, args, float_format):
    from .verify import verify
    report = verify(output, against=against, key=args.key, keep_prefix=args.keep_prefix,
                    strip_prefixes=args.strip_prefix, float_format=float_format,
                    all_failures=getattr(args, "all_failures", False),
                    allow_slow_backend=getattr(args, "allow_slow_backend", False),
                    jobs=args.jobs or usable_cpu_count(),
                    progress=_progress_kind(args))
    if not report.ok:
        for failure in report.failures:
            _say(f"error: {failure}")
        return EXIT_ERROR
    if not args.quiet:
        _say(report.summary())
    return 0


def _run_script(args):
    from .script import render
    text = render(function_name=args.function_name, keep_prefix=args.keep_prefix,
                  no_meta=args.no_meta, weights_only=args.weights_only)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from .writer import AtomicOutput
    with AtomicOutput(args.output, fsync=False, mode=0o777) as out:
        out.write(text.encode("utf-8"))
    if not args.quiet:
        _say(f"wrote {args.output}")
    return 0


_COMMANDS = {"export": _run_export, "verify": _run_verify, "script": _run_script}


# ---- entry point ----------------------------------------------------------------------

def main(argv=None):
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(signal, "SIGXFSZ"):
        # Past RLIMIT_FSIZE, write() should fail with EFBIG (cleaned up) instead of killing us.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
            return _COMMANDS[args.command](args)
    except StreamExportError as exc:
        _say(f"error: {exc}")
        if debug:
            traceback.print_exc()
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("interrupted; nothing was written")
        return EXIT_SIGINT
    except _Terminated:
        _say("terminated; nothing was written")
        return EXIT_SIGTERM
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:  # a bug of ours or a library's: still one line, unless --debug
        _say(f"error: unexpected {type(exc).__name__}: {exc}"
             f"{'' if debug else ' (run with --debug for the traceback)'}")
        if debug:
            traceback.print_exc()
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous_term)
