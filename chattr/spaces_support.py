"""Hugging Face Spaces support: ZeroGPU's `spaces.GPU` where available, a no-op elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def gpu(duration: int = 60) -> Callable[[F], F]:
    """Run the decorated function on a ZeroGPU slice on Spaces; unchanged anywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    decorator: Callable[[F], F] = spaces.GPU(duration=duration)
    return decorator
