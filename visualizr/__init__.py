"""visualizr."""
