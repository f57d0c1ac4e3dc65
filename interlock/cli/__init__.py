"""interlock cli package."""
