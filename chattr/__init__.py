"""chattr."""
