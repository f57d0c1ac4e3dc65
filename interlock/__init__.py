"""interlock package."""
