"""Speech in: recordings transcribed by vocalizr, and voice activity in live audio."""
