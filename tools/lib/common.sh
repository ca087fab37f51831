# Shared by tools/check, tools/demo and tools/bench: dependency install, build.
# Sourced, not run. Everything the project needs comes from Debian packages.

EL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

EL_PACKAGES=(build-essential cmake pkg-config python3 clang-format
  libpaho-mqtt-dev libssl-dev libsqlite3-dev sqlite3 libcurl4-openssl-dev
  libinih-dev libjsmn-dev libcjson-dev libzstd-dev zlib1g-dev libcmocka-dev libsystemd-dev
  mosquitto mosquitto-clients valgrind openssl)
# fault tests: clock jumps under libfaketime (test_clock.py)
EL_PACKAGES+=(libfaketime)
# sync integration tests: TLS termination, the test PKI (openssl CLI), real upstream engines
EL_PACKAGES+=(nginx openssl victoria-metrics clickhouse-server)

el_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages that are missing (apt-get, sudo when not root).
el_install_deps() {
  local missing=() p
  for p in "${EL_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    el_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    el_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
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
EL_PACKAGES+=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static qemu-system-arm cpio systemd) # cross builds, QEMU, appliance, systemd-analyze (tools/sysroot, tools/appliance)
