"""ZeroGPU on Hugging Face Spaces: the engines mark, themselves, the methods that run a model.

`@gpu()` on a method makes it run on a ZeroGPU slice where the `spaces` package is installed and
the hardware is ZeroGPU; anywhere else the method is returned unchanged (only marked), so local
runs, CPU Spaces and tests call it directly.

ZeroGPU runs a marked call in a forked worker and pickles its arguments and result across, so a
marked method should take and return plain data (numpy arrays, CPU tensors) and leave the
engine's own state alone: what it stores on `self` stays in the worker. Mark the outermost model
call of each path, not the helpers it calls: a marked call inside another would ask for a second
slice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# The attribute that marks a GPU method; its value is the slice's duration in seconds.
GPU_MARK = "__zero_gpu_duration__"


def gpu(duration: int = 60) -> Callable[[F], F]:
    """Mark a method that runs a model on the GPU; under `spaces.GPU(duration)` on ZeroGPU."""

    def mark(method: F) -> F:
        setattr(method, GPU_MARK, duration)
        wrapped = _spaces_gpu(duration)(method)
        setattr(wrapped, GPU_MARK, duration)
        return wrapped

    return mark


def gpu_duration(method: object) -> int | None:
    """The duration a method was marked with by `gpu`, or None for an unmarked one."""
    duration = getattr(method, GPU_MARK, None)
    return duration if isinstance(duration, int) else None


def _spaces_gpu(duration: int) -> Callable[[F], F]:
    # Imported when an engine module is, not before: chatacter_common stays light to import.
    try:
        import spaces
    except ImportError:
        return _unchanged
    decorator: Callable[[F], F] = spaces.GPU(duration=duration)
    return decorator


def _unchanged(method: F) -> F:
    return method
