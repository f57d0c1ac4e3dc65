"""The CloudEvents 1.0 envelope in JSON structured mode, as publishers send it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

CONTENT_TYPE = "application/cloudevents+json"
MAX_ID_BYTES = 512
MAX_SOURCE_BYTES = 1024
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class CloudEvent(BaseModel):
    """A CloudEvent; extension attributes are kept (validated by the spec's naming rule)."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)

    specversion: str
    # (source, id) is a stored key (dedupe, executions, decisions): bounded in bytes, so that
    # any id that passes here fits the indexes; the limits in characters come first
    id: str = Field(min_length=1, max_length=MAX_ID_BYTES)
    source: str = Field(min_length=1, max_length=MAX_SOURCE_BYTES)
    # the type is the routing key, which AMQP caps at 255 bytes
    type: str = Field(min_length=1, max_length=255)
    datacontenttype: str | None = None
    dataschema: str | None = None
    subject: str | None = None
    time: datetime | None = None
    data: Any = None
    data_base64: str | None = None

    @field_validator("specversion")
    @classmethod
    def _v1(cls, value: str) -> str:
        if value != "1.0":
            raise ValueError(f"specversion must be '1.0', got {value!r}")
        return value

    @field_validator("id", "source")
    @classmethod
    def _storable(cls, value: str, info: ValidationInfo) -> str:
        limit = MAX_ID_BYTES if info.field_name == "id" else MAX_SOURCE_BYTES
        size = len(value.encode())
        if size > limit:
            raise ValueError(f"{info.field_name} is {size} bytes in UTF-8; at most {limit}")
        return value

    @field_validator("type")
    @classmethod
    def _routable(cls, value: str) -> str:
        if len(value.encode()) > 255:
            raise ValueError("type is longer than 255 bytes and cannot be a routing key")
        if any(c.isspace() for c in value) or "*" in value or "#" in value:
            raise ValueError("type must not contain whitespace, '*' or '#'")
        return value

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time must carry a timezone offset (RFC 3339)")
        return value

    @model_validator(mode="after")
    def _extensions(self) -> CloudEvent:
        if self.data is not None and self.data_base64 is not None:
            raise ValueError("data and data_base64 are mutually exclusive")
        for name in self.model_extra or {}:
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"extension attribute {name!r} must be 1-20 lowercase letters or digits"
                )
        return self

    @property
    def extensions(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def to_scope(self) -> dict[str, Any]:
        """The `event` value seen by CEL expressions."""
        scope = self.model_dump(mode="json", exclude_none=True)
        scope.setdefault("data", None)
        return scope
