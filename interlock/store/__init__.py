"""interlock store package."""
