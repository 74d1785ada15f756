"""Speech and video for a reply: clients of vocalizr and visualizr, the per-sentence fan-out,
joining the pieces, and the local services chattr starts when none are configured."""
