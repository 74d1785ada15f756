# One image for the three programs (the compose file picks the command).
# Dependencies come from the exact pins in requirements.lock.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_LINK_MODE=copy \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

RUN pip install --no-cache-dir uv
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
