# The few verbs people need. Set-up installs the exact pins in requirements.lock (no registry
# addresses in the repository: uv.lock stays out of git, see README "Dependencies").
SHELL := /bin/bash
PY ?= 3.11
VENV := .venv
# uv from PATH, else from a small venv of its own in .uv/ (made by `uv-installed`: Debian's
# Python refuses `pip install` into the system, PEP 668).
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .uv/bin/uv)
# Smart Turn v3.2 (BSD-2-Clause, Daily), the model that hears whether a spoken turn is complete,
# ships inside the pipecat-ai wheel; set-up takes only the .onnx (and its licence) out of it
# (chattr/voice/turn_model_setup.py): pipecat's own dependencies are not needed to run it.
# Moonshine tiny-en (MIT, Moonshine AI), vocalizr's `moonshine` speech-to-text engine: 0.1.0 is
# the last moonshine-voice wheel that carries the weights (later ones download them). Set-up takes
# only the two ONNX Runtime graphs, the tokenizer and the licence; the project's ONNX Runtime
# runs them (the wheel's native library and its dependencies are not needed). Its one wheel is
# for x86-64 Linux; only data files are taken, so any machine may unpack that one.
MOONSHINE_WHEEL := moonshine-voice==0.1.0
MOONSHINE_DIR := $(VENV)/share/vocalizr/moonshine-tiny-en

.PHONY: setup run test test-fast lint typecheck check bench bench-smoke lock browser-deps redis-deps promtool-deps haproxy-deps uv-installed

uv-installed:
	@command -v uv >/dev/null 2>&1 || test -x .uv/bin/uv || \
		{ python3 -m venv .uv && .uv/bin/pip install --quiet uv==$(UV_VERSION); }

# The Piper voice's graph patched to give phoneme durations (vocalizr's word timing), that
# graph optimized, and the voice's pitch and formants are prepared once here, so vocalizr
# neither patches, optimizes nor measures anything when it starts; the shipped portraits'
# faces too, so visualizr starts without MediaPipe (MediaPipe's log lines go to /dev/null).
# The bytecode (.pyc) is made here too, as the image does: where Python may not write it
# (PYTHONDONTWRITEBYTECODE, a read-only install) every start would compile each module again,
# and a cold `make run` took 14.4 s to its first text instead of 6.2 s (bench/startup.py).
# Up to date, the step takes about 2 s.
setup: uv-installed
	$(UV) venv --allow-existing --python $(PY) $(VENV) -q
	$(UV) pip sync --python $(VENV) -q --compile-bytecode requirements.lock
	$(UV) pip install --python $(VENV) -q --no-deps -e .
	$(VENV)/bin/python -m compileall -q chattr vocalizr visualizr chatacter_common >/dev/null
	$(VENV)/bin/python -m chattr.voice.turn_model_setup --uv $(UV)
	$(VENV)/bin/python -m vocalizr.engines.piper_prepare
	$(VENV)/bin/python -m visualizr.prepare_faces characters 2>/dev/null
	@test -f $(MOONSHINE_DIR)/decoder_model_merged.ort || { \
		tmp=$$(mktemp -d) && \
		$(UV) pip install -q --no-deps --python $(VENV) --python-platform x86_64-manylinux_2_34 \
			--target $$tmp $(MOONSHINE_WHEEL) && \
		mkdir -p $(MOONSHINE_DIR) && \
		cp $$tmp/moonshine_voice/assets/tiny-en/{encoder_model.ort,decoder_model_merged.ort,tokenizer.bin} $(MOONSHINE_DIR)/ && \
		cp $$tmp/moonshine_voice-*.dist-info/licenses/LICENSE $(MOONSHINE_DIR)/LICENSE && \
		rm -rf $$tmp; }

run: setup
	$(VENV)/bin/chattr

test: setup browser-deps redis-deps promtool-deps haproxy-deps
	$(VENV)/bin/pytest

# The tests that take seconds: none starts chattr's app, a service, app.py, a process or Chromium
# (those are marked `slow` or `browser`; tests/conftest.py marks the users of such fixtures).
test-fast: setup redis-deps
	$(VENV)/bin/pytest -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

check: lint typecheck test

# bench/stack.py is the set-up the benches share, not a bench.
BENCHES := $(filter-out bench/stack.py,$(wildcard bench/*.py))

bench: setup
	for b in $(BENCHES); do $(VENV)/bin/python $$b || exit 1; done

# Every bench once with --quick (tiny sizes, one run): that each still runs and prints its
# figures, not what they are (tests/test_benches.py, which the slow tests run too).
bench-smoke: setup redis-deps haproxy-deps
	$(VENV)/bin/pytest -q tests/test_benches.py

# Chromium for the browser test, from Debian's packages (browser downloads fail offline).
browser-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# promtool, which checks the Helm chart's alerting rules (tests/deploy/test_chart.py), from
# Debian's `prometheus` package.
promtool-deps:
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

# HAProxy, the proxy in front of the replicas in tests/e2e/test_replicas.py and bench/scale.py,
# from Debian's packages.
haproxy-deps:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }

# Redis for the tests (database 13 at 127.0.0.1:6379; one test runs redis-server itself), from
# Debian's packages; when nothing answers on 6379 one is started there, without persistence.
redis-deps:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@(exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp --logfile /tmp/redis-make-test.log

# Re-resolve after changing pyproject.toml, then commit requirements.lock.
lock: uv-installed
	$(UV) lock --python $(PY)
	$(UV) export --all-extras --all-groups --no-emit-project --no-hashes --format requirements-txt -o requirements.lock -q
