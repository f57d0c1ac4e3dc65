"""Action names mapped to the coroutines that run them: built-ins, modules and entry points."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Final

from executor.actions.builtin_fail import fail
from executor.actions.builtin_http import http
from executor.actions.builtin_log import log
from executor.actions.builtin_publish import publish
from executor.actions.builtin_set import set_values
from executor.actions.context import Action, ActionContext, OutgoingEvent
from executor.actions.errors import StepFailed

__all__ = ["BUILTINS", "Action", "ActionContext", "ActionRegistry", "OutgoingEvent", "StepFailed"]

BUILTINS: Final[Mapping[str, Action]] = {
    "set": set_values,
    "log": log,
    "http": http,
    "publish": publish,
    "fail": fail,
}

# side-effect free (or, for publish, effects that are outbox rows): the executor may run them
# in memory and commit their checkpoints together with the next boundary
INLINE_BUILTINS: Final = frozenset({"set", "log", "publish", "fail"})

ENTRY_POINT_GROUP: Final = "interlock.actions"


class ActionRegistry:
    """The actions one executor can run; built in its composition root, never global."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}
        self._inline: set[str] = set()

    def register(self, name: str, action: Action) -> None:
        """Add `action` under `name`; a name already taken raises ValueError."""
        if not name:
            raise ValueError("action name is empty")
        if not callable(action):
            raise TypeError(f"action {name!r} is not callable: {action!r}")
        if name in self._actions:
            raise ValueError(f"action {name!r} is already registered")
        self._actions[name] = action

    def get(self, name: str) -> Action | None:
        return self._actions.get(name)

    def is_inline(self, name: str) -> bool:
        """True for the built-ins whose checkpoints may share a transaction with the next."""
        return name in self._inline

    def names(self) -> frozenset[str]:
        return frozenset(self._actions)

    @classmethod
    def with_builtins(cls) -> ActionRegistry:
        registry = cls()
        for name, action in BUILTINS.items():
            registry.register(name, action)
        registry._inline.update(INLINE_BUILTINS)
        return registry

    def load_modules(self, modules: Sequence[str]) -> None:
        """Import each module and register what it offers.

        A module exposes either `ACTIONS: Mapping[str, Action]` or
        `register(registry: ActionRegistry) -> None`; one with neither raises TypeError.
        Import errors propagate, so a typo in settings stops the executor at start.
        """
        for module_name in modules:
            module = importlib.import_module(module_name)
            actions: object = getattr(module, "ACTIONS", None)
            hook: object = getattr(module, "register", None)
            if isinstance(actions, Mapping):
                for name, action in actions.items():
                    self.register(name, action)
            elif callable(hook):
                hook(self)
            else:
                raise TypeError(f"module {module_name!r} has neither ACTIONS nor register()")

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register each installed entry point of `group` under the entry point's name."""
        for entry_point in entry_points(group=group):
            self.register(entry_point.name, entry_point.load())
