"""Lazy import of hardware SDKs with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from robolearn.errors import RobolearnError


class MissingSDKError(RobolearnError, ImportError):
    """A hardware SDK is not installed; the message names the pip extra that provides it."""


def require_sdk(module: str, extra: str, device: str) -> ModuleType:
    """Import ``module`` for ``device`` or raise MissingSDKError naming ``pip install robolearn[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingSDKError(
            f"the {device} driver needs the Python module {module!r}, which failed to import ({err}); "
            f"install it with: pip install 'robolearn[{extra}]'"
        ) from err
