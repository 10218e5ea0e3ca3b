#!/usr/bin/env bash
# Install realbench and everything its tests need: a virtual environment in .venv, system packages
# (Java for METEOR, Chromium for the browser tests, strace for the store crash tests) where missing.
# One line per step, with the time it took; apt waits for another apt/dpkg process to let go of its lock.
set -euo pipefail
cd "$(dirname "$0")/.."

step_start=0
step() { step_start=$SECONDS; printf 'setup: %s ... ' "$1"; }
done_step() { echo "${1:-done} ($((SECONDS - step_start)) s)"; }

# apt's own lock timeout (apt >= 1.9.11): wait up to 10 minutes for an unattended upgrade or another
# install instead of failing at once with status 100.
APT_WAIT=(-o DPkg::Lock::Timeout=600)

apt_retry() {
  # `apt-get update` takes the lists lock, which older apt does not wait for: retry for up to 10 minutes.
  local tries=0
  until "$@"; do
    tries=$((tries + 1))
    if [ $tries -ge 60 ]; then return 1; fi
    sleep 10
  done
}

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
step "system packages (${need_apt[*]:-none missing})"
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt_retry apt-get "${APT_WAIT[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive apt_retry apt-get "${APT_WAIT[@]}" install -y -qq "${need_apt[@]}" >/dev/null
    done_step "installed"
  else
    done_step "skipped: please install ${need_apt[*]} (needed by some tests)"
  fi
else
  done_step "present"
fi

step "virtual environment (.venv)"
if [ -x .venv/bin/python ]; then done_step "present"; else python3 -m venv .venv; done_step "made"; fi

step "pip"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1
done_step

step "realbench with its test extras (torch, timm, duckdb, ...; several minutes on a fresh machine)"
if ! .venv/bin/python -m pip install -q -e '.[test]' >.venv/pip-install.log 2>&1; then
  echo "failed"; grep -v "^WARNING: Location 'file:" .venv/pip-install.log >&2; exit 1
fi
done_step
