#!/bin/sh
# Make sure Debian's nginx is present: tests/test_replicas.py runs it as the gRPC load balancer in
# front of three server processes (and `make bench` uses it as a fixed-cost upstream).
# Called by `make install` and `make test`; NGINX_CHECK=0 skips it (the container image does).
set -e
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo -n"
fi
echo "nginx is missing: installing it with apt-get (for tests/test_replicas.py)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null \
        || echo "could not install nginx: tests/test_replicas.py will skip (a failure under CI=true)"
fi
