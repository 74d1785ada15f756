"""vocalizr."""
