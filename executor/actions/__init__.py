"""Step actions: the contract every action follows, the built-ins, and the registry."""

from executor.actions.context import Action, ActionContext, OutgoingEvent
from executor.actions.errors import DestinationRefused, StepFailed
from executor.actions.registry import ActionRegistry

__all__ = [
    "Action",
    "ActionContext",
    "ActionRegistry",
    "DestinationRefused",
    "OutgoingEvent",
    "StepFailed",
]
