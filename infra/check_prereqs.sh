#!/usr/bin/env bash
# Checks what `make setup` cannot install itself, and says what to install.
set -u
fail=0
need() {  # need PROGRAM "why and how to install"
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "lmforge setup: '$1' is missing. $2" >&2
    fail=1
  fi
}
need python3 "Install Python 3.11 or newer."
if [ -z "${JAVA_HOME:-}" ]; then
  need java "Spark needs a Java 17 runtime: apt-get install openjdk-17-jre-headless (or set JAVA_HOME)."
fi
need g++ "DeepSpeed compiles a small C++ op on first start: apt-get install g++."
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "lmforge setup: Python 3.11 or newer is needed (python3 is $(python3 -V 2>&1))." >&2
  fail=1
fi
exit $fail
