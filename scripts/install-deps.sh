#!/usr/bin/env bash
# Installs Popper's build and test dependencies from Debian's packages.
# Idempotent: packages already present are left alone, so a second run is a no-op.
# Runs apt-get as root, or through sudo when not root. Prints one line saying what it installs;
# apt-get's and dpkg's own output goes to a log ($POPPER_INSTALL_LOG, default
# .cache/install-deps.log), whose tail is shown only when the install fails.
set -euo pipefail

packages=(
  build-essential cmake ninja-build git pkg-config
  libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libssl-dev curl
  clang libclang-rt-dev  # libFuzzer and the sanitizer runtimes for scripts/fuzz.sh
)
# Headless Chromium renders the HTML report in harness_report_test (CI must run it);
# POPPER_WITH_BROWSER=0 leaves it out (the browser test then reports itself skipped).
if [[ "${POPPER_WITH_BROWSER:-1}" == "1" ]]; then packages+=(chromium); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
root=$(cd "$(dirname "$0")/.." && pwd)
log=${POPPER_INSTALL_LOG:-$root/.cache/install-deps.log}
mkdir -p "$(dirname "$log")"
echo "install-deps: installing ${#missing[@]} Debian packages: ${missing[*]} (log: $log)"
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo_cmd[@]}" apt-get update -qq &&
       "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "install-deps: apt-get failed; the last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
echo "install-deps: done"
