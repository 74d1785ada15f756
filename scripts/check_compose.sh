#!/usr/bin/env bash
# The compose stack for real: build the image, bring vocalizr and visualizr up with their CPU
# engines (docker-compose.yml + docker-compose.cpu.yml) under podman, ask vocalizr for speech and
# visualizr for a video of it through their published ports, print the figures, take it down.
#
#   scripts/check_compose.sh            # needs podman, podman-compose >= 1.6, ~25 GB free disk
#
# Not run by CI (the image is ~8 GB). Engine settings a machine may need (DESIGN.md "Containers
# here"): CONTAINERS_CONF pointing at a containers.conf, a local image tagged python:3.11-slim when
# no container registry is reachable. Settings: PODMAN_COMPOSE (the command), UV_CACHE (a uv cache
# folder mounted into the build; default `uv cache dir`), KEEP_IMAGE=1 (skip the rebuild when
# chatacter:latest exists).
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=chatacter-check
read -r -a COMPOSE <<<"${PODMAN_COMPOSE:-podman-compose}"
COMPOSE+=(-p "$PROJECT" -f docker-compose.yml -f docker-compose.cpu.yml)
WORK=$(mktemp -d)
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# Ports of their own, so the check never meets another program on 8001/8002; keys, so the
# services' guard is part of what is checked.
export VOCALIZR_PORT=${VOCALIZR_PORT:-$(free_port)} VISUALIZR_PORT=${VISUALIZR_PORT:-$(free_port)}
export VOCALIZR_PUBLIC_URL=http://127.0.0.1:$VOCALIZR_PORT
export VISUALIZR_PUBLIC_URL=http://127.0.0.1:$VISUALIZR_PORT
VOCALIZR_API_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
VISUALIZR_API_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export VOCALIZR_API_KEY VISUALIZR_API_KEY

# --- build ---
started=$(now)
if [[ "${KEEP_IMAGE:-}" == 1 ]] && podman image exists chatacter:latest; then
    echo "build: kept the existing chatacter:latest"
else
    build=(podman build -t chatacter:latest)
    # The host's CA bundle (for package downloads behind a TLS-inspecting proxy) and its uv cache
    # as a copy-on-write overlay (:O): the build reuses downloads and leaves the host's cache as is.
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        build+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro
            --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
    fi
    cache=${UV_CACHE:-$(uv cache dir 2>/dev/null || .uv/bin/uv cache dir 2>/dev/null || true)}
    if [[ -n "$cache" && -d "$cache" ]]; then
        build+=(-v "$cache:/root/.cache/uv:O")
    fi
    "${build[@]}" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
    echo "build: $(since "$started") s"
fi
echo "image: $(podman image inspect chatacter:latest --format '{{.Size}}' |
    python3 -c 'import sys; print(f"{int(sys.stdin.read()) / 1e9:.2f} GB")')"
# Live voice's turn model is in the image (the build copies it out of the pipecat-ai wheel).
podman run --rm chatacter:latest python -c \
    'from chattr.voice.turn_end import load_turn_model; load_turn_model(); print("turn model: loads")'

# --- up ---
down() {
    "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap down EXIT
started=$(now)
"${COMPOSE[@]}" up -d --no-build vocalizr visualizr >"$WORK/up.log" 2>&1 ||
    { cat "$WORK/up.log"; exit 1; }

# podman runs no health checks by itself (no systemd): poll the published /healthz instead.
wait_healthy() {
    local name=$1 port=$2 deadline=$(($(date +%s) + 600))
    until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do
        if (($(date +%s) > deadline)); then
            echo "$name never became healthy; its log:"
            podman logs --tail 60 "${PROJECT}_${name}_1" || true
            exit 1
        fi
        sleep 2
    done
    echo "$name healthy: $(since "$started") s after up"
}
wait_healthy vocalizr "$VOCALIZR_PORT"
wait_healthy visualizr "$VISUALIZR_PORT"

# --- speech, then a video of it ---
started=$(now)
curl -sf -X POST "http://127.0.0.1:$VOCALIZR_PORT/v1/speech" \
    -H "Authorization: Bearer $VOCALIZR_API_KEY" -H "Content-Type: application/json" \
    -d '{"text": "France has more need of me than I have need of France.", "voice": "napoleon"}' \
    -o "$WORK/speech.json"
echo "speech: $(since "$started") s, $(json_field "$WORK/speech.json" duration_s) s of audio," \
    "engine $(json_field "$WORK/speech.json" engine)"
curl -sf "$(json_field "$WORK/speech.json" url)" -H "Authorization: Bearer $VOCALIZR_API_KEY" \
    -o "$WORK/speech.wav"
[[ "$(head -c 4 "$WORK/speech.wav")" == RIFF ]] || { echo "the speech is no WAV file"; exit 1; }
echo "speech file: $(stat -c %s "$WORK/speech.wav") bytes, WAV"
# a key is asked for
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$VOCALIZR_PORT/v1/speech" \
    -H "Content-Type: application/json" -d '{"text": "hello", "voice": "napoleon"}')
[[ "$status" == 401 ]] || { echo "speech without the key answered $status, not 401"; exit 1; }

started=$(now)
curl -sf -X POST "http://127.0.0.1:$VISUALIZR_PORT/v1/videos" \
    -H "Authorization: Bearer $VISUALIZR_API_KEY" \
    -F "audio=@$WORK/speech.wav;type=audio/wav" -F character=napoleon -o "$WORK/video.json"
echo "video: $(since "$started") s, $(json_field "$WORK/video.json" frames) frames," \
    "$(json_field "$WORK/video.json" duration_s) s, engine $(json_field "$WORK/video.json" engine)"
curl -sf "$(json_field "$WORK/video.json" url)" -H "Authorization: Bearer $VISUALIZR_API_KEY" \
    -o "$WORK/video.mp4"
[[ "$(head -c 8 "$WORK/video.mp4" | tail -c 4)" == ftyp ]] || { echo "the video is no MP4"; exit 1; }
echo "video file: $(stat -c %s "$WORK/video.mp4") bytes, MP4"

# --- the containers ran as the image's user, not root ---
for name in vocalizr visualizr; do
    user=$(podman exec "${PROJECT}_${name}_1" id -u)
    [[ "$user" != 0 ]] || { echo "$name runs as root"; exit 1; }
done
echo "users: not root ($user)"
started=$(now)
"${COMPOSE[@]}" down -v >/dev/null 2>&1
echo "down: $(since "$started") s"
echo "check_compose: OK"
