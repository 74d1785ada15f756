"""Characters: folder characters (`character_set`), SillyTavern cards (`cards`), lorebooks and
World Info (`lorebook`, `world_info`), the portraits the page serves, and uploads from the page."""
