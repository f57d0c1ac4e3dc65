"""The engine core: pure decisions over an execution's records (no I/O, no clock, no dice).

`decide(workflow, state, input, context)` is the one statement of what changes; the store's
write path (`interlock.store.apply`) is the one place that applies it.
"""
