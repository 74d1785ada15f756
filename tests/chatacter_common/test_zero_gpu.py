"""ZeroGPU: every model call of the GPU engines runs inside a method the engine marks itself.

The engines are loaded once more with a stand-in `spaces` package whose `GPU` records when a
marked call is running; hooks on every torch module of the (tiny, random) models then check that
no model runs outside one, and that no marked call runs inside another.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from chatacter_common.zero_gpu import gpu, gpu_duration
from tests.conftest import ASSETS
from visualizr.engines.base import FramedPortrait
from visualizr.engines.musetalk import MuseTalkEngine
from visualizr.engines.musetalk_random import build_models
from visualizr.geometry import FaceGeometry
from visualizr.media import AUDIO_RATE
from vocalizr.audio import decode_audio
from vocalizr.engines.xtts import XttsEngine
from vocalizr.engines.xtts_random import build_random_xtts
from vocalizr.settings import Settings as VocalizrSettings

SPEECH = ASSETS / "speech_en_16k.wav"


class GpuProbe:
    """A stand-in for the `spaces` package: `GPU` wraps like ZeroGPU's, and keeps a record."""

    def __init__(self) -> None:
        self.depth = 0
        self.marked_calls: list[str] = []
        self.model_calls = 0
        self.problems: list[str] = []

    def module(self) -> types.ModuleType:
        spaces = types.ModuleType("spaces")
        spaces.GPU = self.gpu  # type: ignore[attr-defined]
        return spaces

    def gpu(self, duration: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.isgeneratorfunction(method):

                @functools.wraps(method)
                def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
                    with self.marked(method.__qualname__):
                        yield from method(*args, **kwargs)

                return generator

            @functools.wraps(method)
            def regular(*args: Any, **kwargs: Any) -> Any:
                with self.marked(method.__qualname__):
                    return method(*args, **kwargs)

            return regular

        return decorate

    def marked(self, name: str) -> _Marked:
        return _Marked(self, name)

    def watch(self, *models: torch.nn.Module) -> None:
        """Check every torch module of `models` runs inside a marked call."""
        for model in models:
            for part in model.modules():
                part.register_forward_pre_hook(self._on_forward)

    def _on_forward(self, part: torch.nn.Module, _inputs: object) -> None:
        self.model_calls += 1
        if self.depth == 0:
            self.problems.append(f"{type(part).__name__} ran outside a marked method")


class _Marked:
    def __init__(self, probe: GpuProbe, name: str) -> None:
        self.probe, self.name = probe, name

    def __enter__(self) -> None:
        if self.probe.depth:
            self.probe.problems.append(f"{self.name} is marked and runs inside a marked call")
        self.probe.depth += 1
        self.probe.marked_calls.append(self.name)

    def __exit__(self, *_: object) -> None:
        self.probe.depth -= 1


def load_under_probe(
    module_name: str, probe: GpuProbe, monkeypatch: pytest.MonkeyPatch
) -> types.ModuleType:
    """A fresh copy of an engine module, decorated with the probe's `spaces.GPU`."""
    monkeypatch.setitem(sys.modules, "spaces", probe.module())
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.origin is not None
    copy_name = f"_zero_gpu_probe.{module_name}"
    copy_spec = importlib.util.spec_from_file_location(copy_name, spec.origin)
    assert copy_spec is not None and copy_spec.loader is not None
    module = importlib.util.module_from_spec(copy_spec)
    monkeypatch.setitem(sys.modules, copy_name, module)  # dataclasses look their module up
    copy_spec.loader.exec_module(module)
    return module


@pytest.fixture
def probe() -> GpuProbe:
    return GpuProbe()


@pytest.mark.slow
def test_xtts_runs_its_models_only_inside_marked_methods(
    probe: GpuProbe, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    module = load_under_probe("vocalizr.engines.xtts", probe, monkeypatch)
    checkpoint = build_random_xtts(tmp_path / "xtts", max_audio_tokens=10)
    settings = VocalizrSettings(
        engine="xtts", xtts_dir=checkpoint, data_dir=tmp_path / "data", ui=False
    )
    engine = module.XttsEngine(settings)
    engine.load()
    probe.watch(engine._model)

    engine.add_voice("ada", decode_audio(SPEECH.read_bytes(), 30))
    assert engine.latent_computations == 1  # counted here, not in the GPU call (a worker there)
    engine.synthesize("Hello there.", "ada", "en", 1.0)
    assert list(engine.stream("Hello there.", "ada", "en", 1.0))

    assert probe.problems == []
    assert probe.model_calls > 0
    assert {"XttsEngine._compute_latents", "XttsEngine.synthesize", "XttsEngine.stream"} <= set(
        probe.marked_calls
    )


@pytest.mark.slow
def test_musetalk_runs_its_models_only_inside_marked_methods(
    probe: GpuProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_under_probe("visualizr.engines.musetalk", probe, monkeypatch)
    unet, vae, whisper, extractor = build_models()
    engine = module.MuseTalkEngine(
        unet, vae, whisper.get_encoder(), extractor, device=torch.device("cpu"), batch_size=4
    )
    probe.watch(engine.unet, engine.vae, engine.whisper)

    size = 128
    no_points = np.zeros((3, 2), np.float32)
    geometry = FaceGeometry(
        face_box=(32.0, 24.0, 64.0, 80.0),
        upper_lip=no_points,
        lower_lip=no_points,
        outer_lower_lip=no_points,
        chin=np.zeros(2, np.float32),
        eyes=(),
        detected=False,
    )
    image = np.full((size, size, 3), 128, np.uint8)
    prepared = engine.prepare(FramedPortrait(image=image, geometry=geometry, size=size))
    assert prepared.latents.device.type == "cpu"  # nothing on the GPU outlives a marked call
    audio = np.sin(np.linspace(0, 400, AUDIO_RATE // 2)).astype(np.float32)
    frames = list(engine.render(prepared, audio, 10, 5))

    assert len(frames) == 5
    assert probe.problems == []
    assert probe.model_calls > 0
    assert {"MuseTalkEngine.prepare", "MuseTalkEngine.render"} <= set(probe.marked_calls)


@pytest.mark.parametrize(
    ("engine", "names"),
    [
        (XttsEngine, ("_compute_latents", "synthesize", "stream")),
        (MuseTalkEngine, ("prepare", "render")),
    ],
)
def test_the_engines_as_imported_are_marked_and_unwrapped(
    engine: type, names: tuple[str, ...]
) -> None:
    # Off ZeroGPU (here), `spaces.GPU` hands each method back as it is: only the mark is added.
    for name in names:
        method = getattr(engine, name)
        assert gpu_duration(method) is not None, f"{engine.__name__}.{name} is not marked"
        assert method.__module__ == engine.__module__


def test_gpu_is_a_no_op_without_the_spaces_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` raises ImportError

    def synthesize(text: str) -> str:
        return text

    marked = gpu(duration=30)(synthesize)
    assert marked is synthesize
    assert marked("hello") == "hello"
    assert gpu_duration(marked) == 30
    assert gpu_duration(lambda: None) is None


def test_gpu_is_a_no_op_with_spaces_off_zero_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("spaces")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def render(frames: int) -> Iterator[int]:
        yield from range(frames)

    assert gpu()(render) is render
