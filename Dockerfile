# One image for the three programs (the compose file picks the command).
# Dependencies come from the exact pins in requirements.lock; they need no system library beyond
# the base image's (OpenCV is the headless build: no libGL, no glib).
FROM python:3.11-slim

# UV_COMPILE_BYTECODE: the .pyc files are made once, at build time, not at each container's start.
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
COPY pyproject.toml README.md ./
COPY chattr ./chattr
COPY vocalizr ./vocalizr
COPY visualizr ./visualizr
COPY characters ./characters
RUN uv pip install --python /app/.venv --no-deps -e .

EXPOSE 7860 8001 8002
CMD ["chattr", "--host", "0.0.0.0", "--port", "7860"]
