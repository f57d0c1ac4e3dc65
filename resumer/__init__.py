"""resumer package."""
