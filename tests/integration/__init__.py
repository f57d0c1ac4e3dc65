"""tests integration package."""
