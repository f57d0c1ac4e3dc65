"""Chaos suite: services killed and the broker restarted while executions run."""
