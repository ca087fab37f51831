# Shared by tools/check, tools/demo and tools/bench: dependency install, build.
# Sourced, not run. Everything the project needs comes from Debian packages.

EL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# What building and running needs (tools/demo): compiler, CMake, the -dev
# libraries CMakeLists.txt requires (find_package/pkg_check_modules; cmocka
# because tests/CMakeLists.txt links the unit tests against it), python3 (the
# build finds it; the demo's screen), the broker and its clients, and the
# sqlite3 CLI the demo and README point at for reading the master log.
# tools/sysroot puts the -dev packages of this list into the cross sysroots.
# protobuf-c-compiler is a build-time tool (protoc-c generates the Sparkplug B
# code from firmware/ingest/sparkplug_b.proto): it runs on the build host,
# also for cross builds, whose sysroot gets libprotobuf-c-dev.
EL_PACKAGES=(build-essential cmake pkg-config python3
  libpaho-mqtt-dev libmosquitto-dev libssl-dev libsqlite3-dev libcurl4-openssl-dev
  libinih-dev libjsmn-dev libcbor-dev libzstd-dev zlib1g-dev libcmocka-dev libsystemd-dev
  libprotobuf-c-dev protobuf-c-compiler
  mosquitto mosquitto-clients sqlite3)
# What only the tests need (tools/check, tools/bench): the format check,
# valgrind, clock jumps under libfaketime (test_clock.py), TLS termination and
# the test PKI (nginx, openssl CLI), real upstream engines for the sync tests,
# lintian for the .deb files (test_packages.py; it pulls in man-db, which
# test_man_pages.py uses to format the manual pages) and Prometheus' promtool
# (package prometheus), the parser test_metrics.py checks with; headless
# Chromium for the live page (test_web.py, driven over the DevTools protocol).
EL_TEST_PACKAGES=(clang-format valgrind libfaketime openssl nginx victoria-metrics clickhouse-server
  lintian man-db prometheus chromium)
# Cross builds, QEMU, the appliance image and systemd-analyze (tools/sysroot,
# tools/appliance, test_cross/test_appliance/test_packages): x86_64 hosts only.
EL_CROSS_PACKAGES=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static qemu-system-arm cpio systemd)

el_sudo() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "need root or sudo for: $*" >&2
    return 1
  fi
}

# Prints those of the packages "$@" that are not installed.
el_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

el_apt_updated=0
el_apt_update() {
  [ "$el_apt_updated" = 1 ] && return 0
  el_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  el_apt_updated=1
}

el_apt_install() {
  echo "== installing: $*"
  el_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Installs the build/run packages (EL_PACKAGES) and any given as arguments
# that are missing (apt-get, sudo when not root).
el_install_deps() {
  local missing=()
  mapfile -t missing < <(el_missing "${EL_PACKAGES[@]}" "$@")
  if [ ${#missing[@]} -gt 0 ]; then
    el_apt_update
    el_apt_install "${missing[@]}"
  fi
}

# True on hosts that run the cross builds and the QEMU stages (amd64).
el_cross_host() {
  [ "$(dpkg --print-architecture)" = amd64 ]
}

# Installs the missing test packages: EL_TEST_PACKAGES, plus EL_CROSS_PACKAGES
# on amd64 hosts; only those with an install candidate for this host's
# architecture (apt-cache policy), naming the others on one line.
el_install_test_deps() {
  local want=("${EL_TEST_PACKAGES[@]}") missing=() avail=() none=() p cand
  if el_cross_host; then want+=("${EL_CROSS_PACKAGES[@]}"); fi
  mapfile -t missing < <(el_missing "${want[@]}")
  [ ${#missing[@]} -gt 0 ] || return 0
  el_apt_update
  for p in "${missing[@]}"; do
    cand=$(apt-cache policy "$p" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
    if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then avail+=("$p"); else none+=("$p"); fi
  done
  if [ ${#none[@]} -gt 0 ]; then
    echo "== not installed, no $(dpkg --print-architecture) package: ${none[*]} (tests that need them cannot pass)"
  fi
  if [ ${#avail[@]} -gt 0 ]; then el_apt_install "${avail[@]}"; fi
}

# el_build DIR BUILD_TYPE [cmake args...]: configure and build with warnings as errors.
el_build() {
  local dir=$1 type=$2; shift 2
  cmake -S "$EL_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DEL_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

el_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
