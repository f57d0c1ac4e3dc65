"""Secrets for `${secrets.NAME}`: read once at start, and redacted wherever they could leak."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, quote_plus

from interlock.errors import InterlockError

ENV_PREFIX: Final = "INTERLOCK_SECRET_"
DIR_SETTING: Final = "INTERLOCK_SECRETS_DIR"
MAX_SECRET_BYTES: Final = 64 * 1024
MASK: Final = "***"


class SecretsError(InterlockError):
    """The secrets directory or one of its files cannot be read; the service cannot start."""


class Secrets:
    """Secret values by name. Its repr names the secrets and never shows a value."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    @classmethod
    def load(cls, directory: Path | None, environ: Mapping[str, str]) -> Secrets:
        """Read the secrets from a directory and the environment, once, at start.

        One secret per file of `directory`, named as the file (hidden files and directories are
        skipped, so a Kubernetes secret volume works as mounted), and one per
        `INTERLOCK_SECRET_<NAME>` variable of `environ`, which wins over a file of the same
        name. Trailing newlines are stripped. Raises SecretsError naming the setting and path.
        """
        values = _read_directory(directory) if directory is not None else {}
        for key, value in environ.items():
            if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX):
                values[key[len(ENV_PREFIX) :]] = value.rstrip("\r\n")
        return cls(values)

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def names(self) -> frozenset[str]:
        return frozenset(self._values)

    def redactor(self, names: Iterable[str] | None = None) -> Redactor:
        """A redactor for the named secrets, or for all of them."""
        chosen = self._values.keys() if names is None else names
        return Redactor(self._values[name] for name in chosen if name in self._values)

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._values)})"

    def __len__(self) -> int:
        return len(self._values)


def _read_directory(directory: Path) -> dict[str, str]:
    where = f"{DIR_SETTING}={directory}"
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise SecretsError(f"{where}: cannot read: {exc.strerror or exc}") from None
    values: dict[str, str] = {}
    for path in entries:
        if path.name.startswith(".") or path.is_dir():
            continue
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise SecretsError(f"{where}: cannot read {path.name}: {exc.strerror or exc}") from None
        if len(raw) > MAX_SECRET_BYTES:
            raise SecretsError(f"{where}: {path.name} is larger than {MAX_SECRET_BYTES} bytes")
        try:
            values[path.name] = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretsError(f"{where}: {path.name} is not UTF-8 text") from None
    return values


class Redactor:
    """Replaces secret values with `***` in text and in JSON-like values.

    It also catches a value's URL-encoded forms (as an echoed query string shows it). Other
    encodings, such as the base64 of a Basic `Authorization` header, are not recognised.
    """

    __slots__ = ("_pattern",)

    def __init__(self, values: Iterable[str]) -> None:
        forms = {form for value in values if value for form in _forms(value)}
        # longest first, so a secret that contains another is masked whole
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """`value` with every string in it (map keys too) redacted; other values unchanged."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self._pattern.sub(MASK, value)
        if isinstance(value, Mapping):
            return {self.value(key): self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value


NO_REDACTION: Final = Redactor(())


def _forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value, safe="")}
