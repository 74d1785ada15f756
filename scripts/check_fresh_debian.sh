#!/usr/bin/env bash
# The README's set-up on a really fresh machine, checked once by hand (never in CI: it builds a
# whole Debian tree and downloads the ~7 GB stack).
#
#   sudo scripts/check_fresh_debian.sh [ROOT]        # ROOT default: /tmp/chatacter-fresh-debian
#
# 1. `debootstrap --variant=minbase bookworm ROOT` (skipped when ROOT already has a Debian);
# 2. a clone of this repository's HEAD at ROOT/work/chatacter, ../shared/assets bind-mounted
#    read-only beside it when present (the tests' media);
# 3. in a chroot with an empty environment: apt-get install of exactly the README's system
#    packages (FRESH_PACKAGES), then `make setup`, timed, then an ldd scan of the venv's
#    shared objects for libraries the system lacks;
# 4. one turn as a new user makes it: `make run` on an empty data folder with the fake LLM
#    (`python -m chattr.testing.fake_llm`), the first message sent the moment the page answers, through
#    gradio_client; the joined video and every segment's video downloaded and opened as MP4.
#    Figures (set-up, page, first text, first video, the reply) are printed as JSON;
# 5. with TEST_ARGS, `make test` in the chroot too (its own apt-get of chromium and redis-server
#    included), pytest given TEST_ARGS through PYTEST_ADDOPTS: TEST_ARGS="tests/visualizr -x -q";
#    TEST_ARGS=all runs the whole suite.
# KEEP_VENV=1 reuses the clone's .venv/ from a previous run (the tracked files move to HEAD).
#
# Needs root, debootstrap, and the Debian and PyPI registries. Certificates the host added in
# /usr/local/share/ca-certificates (a TLS-inspecting proxy's) are trusted in the chroot too, so
# it reaches the registries as the host does. Every mount is undone on exit; ROOT is kept (rm -rf
# it when done; a rerun reuses it and re-clones the repository, so `make setup` starts over).
set -euo pipefail

ROOT=${1:-/tmp/chatacter-fresh-debian}
SUITE=${SUITE:-bookworm}
FRESH_PACKAGES=${FRESH_PACKAGES:-python3 python3-venv make}
TEST_ARGS=${TEST_ARGS:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
ASSETS=$REPO/../shared/assets

[[ $(id -u) == 0 ]] || { echo "run as root (debootstrap, chroot, mount)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "apt-get install debootstrap first" >&2; exit 2; }

cleanup() {
    # processes still running inside the chroot (started by this script), by pid
    local pid
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$ROOT" ]] && kill -9 "$pid" 2>/dev/null || true
    done
    local m
    for m in work/shared/assets dev sys proc; do
        mountpoint -q "$ROOT/$m" && { umount -R "$ROOT/$m" 2>/dev/null || umount -R -l "$ROOT/$m"; }
    done
    if findmnt -rn -o TARGET | grep -q "^$ROOT/"; then
        echo "still mounted under $ROOT:" >&2
        findmnt -rn -o TARGET | grep "^$ROOT/" >&2
    fi
}
trap cleanup EXIT

in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        bash -euo pipefail -c "$1"
}

now() { date +%s.%N; }
since() { python3 -c "print(round($(now) - $1, 1))"; }

if [[ ! -x $ROOT/usr/bin/apt-get ]]; then
    started=$(now)
    # The Debian mirror: DEBIAN_MIRROR, else the first one this machine's apt uses.
    mirror=${DEBIAN_MIRROR:-$(grep -hoE 'https?://[^ ]+' /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list 2>/dev/null | head -1)}
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$mirror" >"$ROOT.debootstrap.log" 2>&1 \
        || { tail -20 "$ROOT.debootstrap.log" >&2; exit 1; }
    echo "debootstrap: $(since "$started") s"
fi

mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys"
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi
if [[ -d $ASSETS ]]; then
    mkdir -p "$ROOT/work/shared/assets"
    mount --bind "$ASSETS" "$ROOT/work/shared/assets"
    mount -o remount,bind,ro "$ROOT/work/shared/assets"
fi
rm -rf "$ROOT/tmp/chattr-fresh"
if [[ ${KEEP_VENV:-0} == 1 && -d $ROOT/work/chatacter/.git ]]; then
    # a rerun that keeps .venv/ and .uv/ (ignored files): only the tracked files move to HEAD
    git -C "$ROOT/work/chatacter" fetch -q "$REPO" HEAD
    git -C "$ROOT/work/chatacter" reset -q --hard FETCH_HEAD
else
    rm -rf "$ROOT/work/chatacter"
    git clone -q "$REPO" "$ROOT/work/chatacter"
fi
echo "repository: $(git -C "$ROOT/work/chatacter" log --oneline -1)"

started=$(now)
in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends $FRESH_PACKAGES >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }
    command -v update-ca-certificates >/dev/null && update-ca-certificates >/dev/null"
echo "apt-get install $FRESH_PACKAGES: $(since "$started") s"

started=$(now)
in_root "cd /work/chatacter && make setup >/tmp/setup.log 2>&1 || { tail -30 /tmp/setup.log; exit 1; }"
echo "make setup: $(since "$started") s ($(in_root 'du -sh /work/chatacter/.venv | cut -f1'))"

# ldd of each .so alone also misses the libraries a wheel ships beside it (found at import
# through the importing module's rpath): those names are dropped, what is left is looked for on
# the system. On bookworm minbase that is optional parts only (CUDA driver and InfiniBand, system
# FFmpeg for torchcodec, OpenMP/TBB for numba's thread pools, libheif).
echo "libraries the venv's .so files name, found neither in the venv nor on this system:"
in_root 'cd /work/chatacter && find .venv -name "*.so*" -printf "%f\n" | sort -u >/tmp/venv-libs
    find .venv -name "*.so*" -type f -print0 | { xargs -0 -n50 ldd 2>/dev/null || true; } \
        | awk "/not found/ {print \$1}" | sort -u | comm -23 - /tmp/venv-libs | tr "\n" " "; echo'

cat >"$ROOT/tmp/first_turn.py" <<'PY'
"""`make run` on an empty data folder, the first message the moment the page answers."""

import json
import os
import signal
import subprocess
import sys
import time

import av
import httpx
from gradio_client import Client

LLM_PORT, PORT = 9100, 7860
url = f"http://127.0.0.1:{PORT}"
llm = subprocess.Popen([sys.executable, "-m", "chattr.testing.fake_llm", "--port", str(LLM_PORT)])
env = {
    **os.environ,
    "GROQ_API_KEY": "not-a-real-key",
    "CHATTR_LLM_BASE_URL": f"http://127.0.0.1:{LLM_PORT}",
    "CHATTR_DATA_DIR": "/tmp/chattr-fresh",
    "CHATTR_PORT": str(PORT),
}
log = open("/tmp/chattr-run.log", "wb")
started = time.monotonic()
app = subprocess.Popen(["make", "run"], env=env, stdout=log, stderr=subprocess.STDOUT,
                       start_new_session=True)


def mp4(link: str) -> dict:
    response = httpx.get(link, timeout=60)
    response.raise_for_status()
    data = response.content
    assert data[4:8] == b"ftyp", f"not an MP4: {link}"
    path = "/tmp/check.mp4"
    open(path, "wb").write(data)
    with av.open(path) as container:
        return {
            "bytes": len(data),
            "streams": sorted(f"{s.type}:{s.codec_context.name}" for s in container.streams),
            "duration_s": round((container.duration or 0) / 1e6, 2),
        }


figures: dict = {}
try:
    while True:
        assert app.poll() is None, "make run exited; see /tmp/chattr-run.log"
        assert time.monotonic() - started < 300, "no page within 300 s"
        try:
            if httpx.get(url + "/config", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    figures["page_s"] = round(time.monotonic() - started, 1)
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 120})
    sent = time.monotonic()
    job = client.submit(message="Who are you?", character="napoleon", session_id="", media=True,
                        api_name="/chat")
    first_text = first_video = None
    while not job.done():
        outputs = job.outputs()
        if outputs:
            last = outputs[-1]
            if first_text is None and last.get("text"):
                first_text = time.monotonic() - sent
            if first_video is None and any(s.get("video_url") for s in last.get("segments", [])):
                first_video = time.monotonic() - sent
        time.sleep(0.05)
    reply = job.result()
    done = time.monotonic() - sent
    figures.update(
        first_text_s=round(first_text or done, 1),
        first_video_s=round(first_video or done, 1),
        reply_s=round(done, 1),
        reply_since_start_s=round(time.monotonic() - started, 1),
        text=reply["text"],
        errors=reply["errors"],
        segments=[{"text": s["text"], "audio": bool(s["audio_url"]),
                   "video": mp4(s["video_url"]) if s["video_url"] else None}
                  for s in reply["segments"]],
        video=mp4(reply["video_url"]) if reply["video_url"] else None,
        health=httpx.get(url + "/healthz").json(),
    )
finally:
    print(json.dumps(figures, indent=1))
    os.killpg(app.pid, signal.SIGINT)
    try:
        app.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(app.pid, signal.SIGKILL)
    llm.terminate()
    llm.wait(10)
if not figures.get("video"):
    sys.exit("the first turn has no video")
PY
in_root "cd /work/chatacter && .venv/bin/python /tmp/first_turn.py" \
    || { echo "--- chattr's log:"; tail -40 "$ROOT/tmp/chattr-run.log"; exit 1; }

if [[ -n $TEST_ARGS ]]; then
    [[ $TEST_ARGS == all ]] && TEST_ARGS=""
    started=$(now)
    in_root "cd /work/chatacter && PYTEST_ADDOPTS='$TEST_ARGS' make test"
    echo "make test ($TEST_ARGS): $(since "$started") s"
fi
