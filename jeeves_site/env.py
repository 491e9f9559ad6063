"""Typed readers for environment variables that refuse bad values.

Each reader raises ``ImproperlyConfigured`` naming the variable and the value it
expected, so a typo in a unit file fails loudly at start instead of silently
falling back to a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

from jeeves_site.small_files import MAX_SECRET_FILE_BYTES, read_small_file

# NAME_FILE -> path, for each secret read from a file (``manage.py check`` warns when
# other users can read one: runner.W005).
SECRET_FILES: dict[str, str] = {}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "", environ: Mapping[str, str] = os.environ) -> str:
    """Return the variable's value, or ``default`` when it is unset or empty."""
    value = environ.get(name, "")
    return value if value != "" else default


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """Return a boolean; only true/false, yes/no, on/off, 1/0 are accepted."""
    value = environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(
    name: str, default: int, minimum: int | None = None, environ: Mapping[str, str] = os.environ
) -> int:
    """Return an integer, refusing non-numbers and values below ``minimum``."""
    value = environ.get(name, "").strip()
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}")
    return number


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Return a comma-separated list with blanks dropped."""
    value = environ.get(name, "")
    if value.strip() == "":
        return list(default)
    return [part.strip() for part in value.split(",") if part.strip()]


def env_secret(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """Return a secret from ``NAME`` or from the file named by ``NAME_FILE``.

    The value itself never appears in an error message.
    """
    value = environ.get(name, "")
    if value:
        return value
    path = environ.get(f"{name}_FILE", "")
    if not path:
        return ""
    SECRET_FILES[f"{name}_FILE"] = path
    try:
        return read_small_file(path, MAX_SECRET_FILE_BYTES).decode("utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImproperlyConfigured(f"{name}_FILE: {path} is not UTF-8 text") from None
