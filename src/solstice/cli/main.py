"""solstice: list, show, run, report, reproduce.

Results go to stdout, logs to stderr. Exit codes: 0 ok, 1 a run failed, 2 a usage, config, data,
model or capability error (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from solstice import __version__
from solstice.errors import SolsticeError


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname).1s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("solstice").setLevel(level)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import warnings

    logging.captureWarnings(True)  # warnings that are shown go through logging (one line, stderr)
    if verbose < 1:  # third-party deprecation and future warnings are noise to a user; -v shows them
        for cat in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=cat)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # third-party bars (weights loading)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "SOLSTICE"})
@click.version_option(__version__, prog_name="solstice")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Solstice: the LLM papers of June 2024 (second half), runnable on your model and data."""
    _setup_logging(-1 if quiet else verbose)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from solstice.cli import commands  # noqa: F401 - registers the commands

    try:
        rv = cli.main(args=argv, prog_name="solstice", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("solstice: interrupted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:
        print(f"solstice: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except SolsticeError as exc:
        print(f"solstice: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("solstice: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
