"""tests support package."""
