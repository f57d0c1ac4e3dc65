"""The step graph of a workflow: who needs whom, and in which order (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["CycleError", "StepGraph", "find_cycle", "resolve_needs"]


class CycleError(ValueError):
    """`needs` form a cycle; `cycle` lists it from a step back to that step."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__("needs form a cycle: " + " -> ".join(self.cycle))


def resolve_needs(ids: Sequence[str], declared: Sequence[Sequence[str] | None]) -> list[list[str]]:
    """Each step's needs: as declared, or, when omitted, the step listed before it.

    Omitting `needs` keeps a plain list of steps a sequence, as before graphs existed.
    """
    resolved: list[list[str]] = []
    for index, needs in enumerate(declared):
        if needs is None:
            resolved.append([ids[index - 1]] if index else [])
        else:
            resolved.append(list(needs))
    return resolved


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as `[a, b, ..., a]`, or None; unknown ids in `needs` are ignored here."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in needs:
        if state.get(root):
            continue
        path: list[str] = [root]
        state[root] = 1
        stack = [iter(needs[root])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            if nxt not in needs:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(needs[nxt]))
    return None


@dataclass(frozen=True, slots=True)
class StepGraph:
    """A validated acyclic graph over step ids, in definition order."""

    order: tuple[str, ...]
    needs: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]
    ancestors: Mapping[str, frozenset[str]]

    @classmethod
    def build(cls, ids: Sequence[str], needs: Sequence[Sequence[str]]) -> StepGraph:
        """Raise CycleError or KeyError (an unknown id); validation reports both nicer first."""
        by_id = {step_id: tuple(dict.fromkeys(n)) for step_id, n in zip(ids, needs, strict=True)}
        for step_needs in by_id.values():
            for need in step_needs:
                if need not in by_id:
                    raise KeyError(need)
        if (cycle := find_cycle(by_id)) is not None:
            raise CycleError(cycle)
        dependents: dict[str, list[str]] = {step_id: [] for step_id in ids}
        for step_id in ids:
            for need in by_id[step_id]:
                dependents[need].append(step_id)
        ancestors: dict[str, frozenset[str]] = {}
        for step_id in _topological(ids, by_id):
            found: set[str] = set()
            for need in by_id[step_id]:
                found.add(need)
                found |= ancestors[need]
            ancestors[step_id] = frozenset(found)
        return cls(
            order=tuple(ids),
            needs=MappingProxyType(by_id),
            dependents=MappingProxyType({k: tuple(v) for k, v in dependents.items()}),
            ancestors=MappingProxyType(ancestors),
        )

    def descendants(self, step_id: str) -> frozenset[str]:
        found: set[str] = set()
        todo = [step_id]
        while todo:
            for child in self.dependents[todo.pop()]:
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return frozenset(found)


def _topological(ids: Sequence[str], needs: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's order, ties broken by definition order."""
    waiting = {step_id: len(needs[step_id]) for step_id in ids}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in ids}
    for step_id in ids:
        for need in needs[step_id]:
            dependents[need].append(step_id)
    ready = [step_id for step_id in ids if not waiting[step_id]]
    order: list[str] = []
    while ready:
        step_id = ready.pop(0)
        order.append(step_id)
        for child in dependents[step_id]:
            waiting[child] -= 1
            if not waiting[child]:
                ready.append(child)
    return order
