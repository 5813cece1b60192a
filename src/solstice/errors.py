"""The project's exceptions. Each carries a message meant for the user: one line, what is wrong and
what to do. The CLI prints it and exits with code 2 (usage, config, data, capability) or 1 (a run
that failed for another reason)."""

from __future__ import annotations


class SolsticeError(Exception):
    """Base of every error the CLI reports as one line."""

    exit_code = 2


class ConfigError(SolsticeError):
    """A configuration value, key, file or command-line option is wrong."""


class DataError(SolsticeError):
    """A dataset is missing, unreadable or does not match its recorded checksum."""


class DataUnavailable(DataError):
    """A dataset is neither present locally nor downloadable from here; `reproduce` skips such a paper."""


class CapabilityError(SolsticeError):
    """A model backend cannot do what a paper needs (e.g. hidden states from an API model)."""


class BackendError(SolsticeError):
    """A model could not be loaded or an endpoint could not be reached."""


class ResumeError(SolsticeError):
    """A run directory cannot be resumed (changed config, missing files)."""


class MissingDependencyError(SolsticeError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        hint = f"pip install 'solstice-llm[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the package '{package}' is not installed{what}; install it with: {hint}")
        self.package = package
        self.extra = extra


def require(module: str, extra: str | None = None, purpose: str = "", package: str | None = None):
    """Import an optional dependency or raise MissingDependencyError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from exc
