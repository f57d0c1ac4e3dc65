"""Durations: "500ms", "1h30m", "7d", ISO 8601 "PT10M" or plain seconds, to and from timedelta."""

import math
import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Final

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["Duration", "format_duration", "parse_duration"]

_MS: Final = 1_000
_S: Final = 1_000_000
_M: Final = 60 * _S
_H: Final = 60 * _M
_D: Final = 24 * _H
_UNIT_US: Final = {"ms": _MS, "s": _S, "m": _M, "h": _H, "d": _D}

_NUM = r"\d+(?:\.\d+)?"
_OURS: Final = re.compile(rf"(?:{_NUM}(?:ms|s|m|h|d))+")
_OURS_PART: Final = re.compile(rf"({_NUM})(ms|s|m|h|d)")
_ISO_NUM = r"\d+(?:[.,]\d+)?"
_ISO: Final = re.compile(
    rf"P(?:(?P<Y>{_ISO_NUM})Y)?(?:(?P<MO>{_ISO_NUM})M)?(?:(?P<W>{_ISO_NUM})W)?(?:(?P<D>{_ISO_NUM})D)?"
    rf"(?:T(?=\d)(?:(?P<H>{_ISO_NUM})H)?(?:(?P<MI>{_ISO_NUM})M)?(?:(?P<S>{_ISO_NUM})S)?)?"
)
_ISO_US: Final = {"W": 7 * _D, "D": _D, "H": _H, "MI": _M, "S": _S}
_EXPECTED = "expected e.g. '500ms', '30s', '1h30m', '7d', ISO 8601 'PT10M', or seconds"


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse a non-negative duration; numbers are seconds. Raises ValueError quoting the input."""
    if isinstance(value, timedelta):
        td = value
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"invalid duration {value!r}: {_EXPECTED}")
    elif isinstance(value, str):
        td = _from_us(_parse_text(value.strip(), value), value)
    elif not math.isfinite(value):
        raise ValueError(f"invalid duration {value!r}: must be finite")
    else:
        td = _from_us(round(Decimal(value) * _S), value)
    if td < timedelta(0):
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    return td


def _parse_text(text: str, original: str) -> int:
    if _OURS.fullmatch(text):
        return sum(round(Decimal(n) * _UNIT_US[u]) for n, u in _OURS_PART.findall(text))
    iso = _ISO.fullmatch(text)
    if iso is None or text == "P":
        hint = "must not be negative" if text.startswith("-") else _EXPECTED
        raise ValueError(f"invalid duration {original!r}: {hint}")
    if iso["Y"] or iso["MO"]:
        raise ValueError(f"invalid duration {original!r}: years and months have no fixed length")
    return sum(round(Decimal(iso[k].replace(",", ".")) * us) for k, us in _ISO_US.items() if iso[k])


def _from_us(micros: int, original: object) -> timedelta:
    try:
        return timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError(f"invalid duration {original!r}: too large") from None


def format_duration(td: timedelta) -> str:
    """Give the canonical exact form parse_duration reads back: "10m", "1d2h", "1500ms"."""
    us = (td.days * 86_400 + td.seconds) * _S + td.microseconds
    if us < 0:
        raise ValueError(f"cannot format negative duration {td!r}")
    if us == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", _D), ("h", _H), ("m", _M)):
        count, us = divmod(us, size)
        if count:
            parts.append(f"{count}{unit}")
    if us % _S == 0:
        if us:
            parts.append(f"{us // _S}s")
    else:
        # Seconds fold into milliseconds so 1.5s reads "1500ms", not "1s500ms".
        ms, rest = divmod(us, _MS)
        parts.append(f"{ms}.{rest:03d}".rstrip("0") + "ms" if rest else f"{ms}ms")
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A timedelta field that reads any parse_duration form and stores the canonical string."""
