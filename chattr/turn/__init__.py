"""One chat turn: the turn service, its prompt, the sentences of a streamed reply, what of it is
spoken, and a person's own data (export, forget)."""
