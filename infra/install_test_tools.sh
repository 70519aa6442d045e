#!/usr/bin/env bash
# Installs what the tests need beyond the venv: `docker-compose` (Debian's v1 package), whose
# `config` command validates docker-compose.yml without a Docker engine. PyPI's docker-compose
# cannot go into the venv: it needs PyYAML<6 and jsonschema<4 (the project pins 6 and 4), and
# PyYAML 5.4 no longer builds on Python 3.11 with Cython 3. Without apt and root, say what to do.
set -u
command -v docker-compose >/dev/null 2>&1 && exit 0
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo -n"
if command -v apt-get >/dev/null 2>&1 && $as_root true 2>/dev/null; then
  echo "lmforge setup: installing docker-compose (apt) to validate docker-compose.yml"
  $as_root apt-get install -y -q docker-compose >/dev/null || {
    $as_root apt-get update -q >/dev/null && $as_root apt-get install -y -q docker-compose >/dev/null
  } && exit 0
fi
echo "lmforge setup: 'docker-compose' is missing, so tests/infra/test_compose.py cannot validate" \
  "docker-compose.yml (it fails where CI is set). Install it: apt-get install docker-compose." >&2
[ -z "${CI:-}" ]
