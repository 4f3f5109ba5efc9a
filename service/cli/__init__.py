"""The `whaleid` command line: enrol photos, identify photos, evaluate, serve.

Exit codes: 0 success; 1 bad input (a bad photo source, an unreadable photo, a database
that will not open); 2 a usage or configuration error; 130 interrupted (Ctrl-C).
User errors are one line on stderr, never a traceback.

The engine, the HTTP stack and the evaluation are imported inside the commands that use
them, so `whaleid --help` and argument errors answer without loading FAISS or Litestar.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from cluster.session import ClusterError
from embeddings.allocator import retain_freed_memory
from embeddings.model_files import ModelFileError
from indexer.store import StoreError
from service.cli._exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    CommandError,
    fail,
)
from service.cli._parser import build_parser
from service.config import ConfigError, load_settings
from service.photo_sources import ManifestError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `whaleid` command.

    Args:
        argv: the arguments after the program name; None for `sys.argv[1:]`.

    Returns:
        The exit code (see the module docstring).
    """
    retain_freed_memory()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command: Command = args.command
    try:
        settings = load_settings(args.config)
        if args.data is not None:
            settings = msgspec.structs.replace(settings, data_dir=str(args.data))
        return command(args, settings)
    except ConfigError as exc:
        return fail(f"configuration error: {exc}", EXIT_USAGE)
    except CommandError as exc:
        return fail(str(exc), EXIT_FAILED)
    except ManifestError as exc:
        return fail(f"bad photo source: {exc}", EXIT_FAILED)
    except StoreError as exc:
        return fail(f"database error: {exc}", EXIT_FAILED)
    except ModelFileError as exc:
        return fail(f"model error: {exc}", EXIT_FAILED)
    except ClusterError as exc:
        return fail(f"cluster error: {exc}", EXIT_FAILED)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
