"""Scenes: one conversation with several characters, each answering in its own voice and face."""
