"""esp layer."""
