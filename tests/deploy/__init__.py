"""The shipped deploy/ files: alert rules, dashboard, compose profile."""
