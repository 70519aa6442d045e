#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium` package) for `make ui-check`, which opens the
# Prefect and MLflow UIs in a real browser. Without apt and root, say what to do and fail.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo -n"
if command -v apt-get >/dev/null 2>&1 && $as_root true 2>/dev/null; then
  echo "lmforge ui-check: installing chromium (apt)"
  $as_root apt-get install -y -q --no-install-recommends chromium >/dev/null || {
    $as_root apt-get update -q >/dev/null &&
      $as_root apt-get install -y -q --no-install-recommends chromium >/dev/null
  } && exit 0
fi
echo "lmforge ui-check: 'chromium' is missing. Install it: apt-get install chromium" >&2
exit 1
