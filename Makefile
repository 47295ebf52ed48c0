# Model Runtime — every target installs what it needs first (the venv is a prerequisite).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF     := .tools/node_modules/.bin/buf
PROTOS  := $(wildcard protos/modelruntime/v1/*.proto)
GEN_OUT := clients/python
CONFIG  ?= config/default.yaml
# Type-checked by `make test`.
MYPY_PATHS := engine server providers

.PHONY: install nginx proto proto-check sync-client lint test run bench clean
NGINX_CHECK ?= 1

$(STAMP): pyproject.toml clients/python/pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]' -e clients/python
	touch $(STAMP)

install: $(STAMP) nginx

# Debian's nginx for tests/test_replicas.py (apt-get when missing; NGINX_CHECK=0 skips).
nginx:
	@[ "$(NGINX_CHECK)" = 0 ] || sh scripts/ensure_nginx.sh

$(BUF):
	mkdir -p .tools
	cd .tools && npm install --no-save --no-audit --no-fund --loglevel=error @bufbuild/buf@$(BUF_VERSION)

define protoc
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m grpc_tools.protoc -I protos \
		--python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) $(PROTOS)
endef

# Regenerate the checked-in stubs after editing protos/.
proto: $(STAMP)
	$(call protoc,$(GEN_OUT))

# Fail when the checked-in stubs differ from what the protos generate.
proto-check: $(STAMP)
	rm -rf .tools/gen && mkdir -p .tools/gen
	$(call protoc,.tools/gen)
	diff -r -x '__init__.py' -x '__pycache__' .tools/gen/modelruntime/v1 $(GEN_OUT)/modelruntime/v1 \
		|| (echo "generated stubs are stale: run 'make proto'" && exit 1)

# Regenerate clients/python/modelruntime/_sync.py after editing _async.py
# (tests/test_sync_client_generated.py fails until it is).
sync-client: $(STAMP)
	$(PY) scripts/gen_sync_client.py

lint: $(STAMP) $(BUF)
	$(BUF) lint protos
	$(VENV)/bin/ruff check server engine providers scripts bench tests clients/python/modelruntime

test: $(STAMP) $(BUF) nginx
	$(BUF) lint protos
	$(VENV)/bin/ruff check server engine providers scripts bench tests clients/python/modelruntime
	$(MAKE) --no-print-directory proto-check
	$(VENV)/bin/mypy $(MYPY_PATHS)
	$(PY) -m pytest -q -p no:cacheprovider

run: $(STAMP)
	$(PY) -m server --config $(CONFIG)

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[bench]'  # matplotlib draws bench/results/latest.png
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools .pytest_cache
