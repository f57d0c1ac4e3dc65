"""What the relay's batch publish takes from aiormq's private channel state, held in place.

`interlock.bus.publisher._write_batch` does per batch the bookkeeping `Channel.basic_publish`
does per message. pyproject.toml pins aiormq and pamqp to the versions this was written
against; an upgrade that moves any of this fails here, by name, instead of in production.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from importlib.metadata import version

import aiormq
from aiormq.abc import ChannelFrame

# attribute -> what the relay does with it
CHANNEL_STATE = {
    "lock": "held while the batch's frames are queued",
    "delivery_tag": "the publish sequence number, advanced by the batch's size",
    "confirmations": "a future per delivery tag, completed by the broker's ack or nack",
    "message_id_delivery_tag": "finds a returned message's confirm by its message id",
    "write_queue": "the connection's frame queue the batch is put on",
    "max_content_size": "splits bodies into frames",
    "number": "the channel number in each frame",
}


def test_aiormq_and_pamqp_are_the_versions_the_relay_was_written_against() -> None:
    assert version("aiormq").startswith("7.2."), version("aiormq")
    assert version("pamqp").startswith("4.0."), version("pamqp")


def test_the_channel_state_the_relay_writes_to_is_still_set_up_by_aiormq() -> None:
    source = inspect.getsource(aiormq.Channel)
    missing = [
        name
        for name in CHANNEL_STATE
        if not re.search(rf"self\.{name}\b", source) and not hasattr(aiormq.Channel, name)
    ]
    assert missing == [], f"aiormq.Channel no longer has {missing}: see _write_batch"
    assert "self.confirmations[" in source or "self.confirmations.pop" in source
    assert callable(aiormq.Channel.create_future)
    assert isinstance(inspect.getattr_static(aiormq.Channel, "is_closed"), property)


def test_a_channel_frame_still_takes_a_payload_and_a_drain_future() -> None:
    assert [f.name for f in dataclasses.fields(ChannelFrame)] == [
        "payload",
        "should_close",
        "drain_future",
    ]
