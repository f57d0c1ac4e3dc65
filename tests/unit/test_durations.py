from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from schemas.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("10m", timedelta(minutes=10)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("0s", timedelta(0)),
        (" 10m ", timedelta(minutes=10)),
        ("PT10M", timedelta(minutes=10)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT1H30M15S", timedelta(hours=1, minutes=30, seconds=15)),
        ("P2W", timedelta(days=14)),
    ],
)
def test_text_forms_parse_to_the_same_timedelta(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_numbers_are_seconds_and_timedeltas_pass_through() -> None:
    assert parse_duration(90) == timedelta(seconds=90)
    assert parse_duration(0.25) == timedelta(milliseconds=250)
    assert parse_duration(timedelta(hours=1)) == timedelta(hours=1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "expected e.g."),
        ("10x", "expected e.g."),
        ("10", "expected e.g."),
        ("1h 30m", "expected e.g."),
        ("-5s", "must not be negative"),
        (-1, "must not be negative"),
        (timedelta(seconds=-1), "must not be negative"),
        ("P1Y", "years and months"),
        ("P1M", "years and months"),
        ("P", "expected e.g."),
        ("PT", "expected e.g."),
        ("pt10m", "expected e.g."),
        (float("nan"), "finite"),
        (True, "expected e.g."),
        ("999999999999d", "too large"),
    ],
)
def test_bad_durations_are_rejected_quoting_the_input(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(minutes=10), "10m"),
        (timedelta(hours=26), "1d2h"),
        (timedelta(minutes=1, milliseconds=500), "1m500ms"),
        (timedelta(microseconds=1), "0.001ms"),
        (timedelta(seconds=1, microseconds=1500), "1001.5ms"),
        (timedelta(days=365), "365d"),
    ],
)
def test_format_gives_the_canonical_form_that_parses_back(td: timedelta, text: str) -> None:
    assert format_duration(td) == text
    assert parse_duration(text) == td


def test_format_refuses_negative_durations() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


class _Holder(BaseModel):
    wait: Duration


def test_duration_fields_read_any_form_and_dump_the_canonical_string() -> None:
    holder = _Holder.model_validate({"wait": "PT90M"})
    assert holder.wait == timedelta(minutes=90)
    assert holder.model_dump(mode="json") == {"wait": "1h30m"}
    assert _Holder.model_validate(holder.model_dump(mode="json")) == holder


def test_duration_fields_report_the_bad_input() -> None:
    with pytest.raises(ValidationError, match="invalid duration '10x'"):
        _Holder.model_validate({"wait": "10x"})
    with pytest.raises(ValidationError, match="invalid duration"):
        _Holder.model_validate({"wait": {"until": "x"}})
