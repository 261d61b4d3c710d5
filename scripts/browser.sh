#!/usr/bin/env bash
# What the browser tests (tests/integration/test_page.py) need, installed where it is missing:
# Chromium and a Japanese font, from Debian's packages (as root, or with sudo that asks no
# password). Without them those tests are skipped (unless NMT_REQUIRE_BROWSER=1, as in CI).
#   NMT_BROWSER=0   install nothing
set -uo pipefail
[ "${NMT_BROWSER:-1}" = 0 ] && exit 0
have_browser() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "${NMT_CHROMIUM:-}" ]; }
have_font() { fc-list :lang=ja 2>/dev/null | grep -q .; }
have_browser && have_font && exit 0
if [ "$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "browser tests: no Chromium, and no root to install it (apt-get install chromium fonts-ipafont-gothic)" >&2
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "browser tests: no apt-get here; install Chromium yourself (NMT_CHROMIUM=/path)" >&2; exit 0; }
echo "installing Chromium and a Japanese font for the browser tests (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
packages=(chromium fonts-ipafont-gothic)
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null 2>&1 \
  || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; } \
  || echo "browser tests: apt-get could not install ${packages[*]}" >&2
exit 0
