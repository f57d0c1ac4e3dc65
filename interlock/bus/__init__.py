"""interlock bus package."""
