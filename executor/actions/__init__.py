"""executor actions package."""
