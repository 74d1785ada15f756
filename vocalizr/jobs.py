"""The bounded job queue, from the shared service kit (one for both services)."""

from chatacter_common.service.jobs import JobQueue

__all__ = ["JobQueue"]
