# toolchain-armhf.cmake — cross-compile edgelambda for 32-bit ARM Linux
# (Raspberry Pi 2/3/4 on a 32-bit OS; Debian arch armhf = ARMv7 with VFPv3-D16
# hard-float: not the ARMv6 of the Pi 1 and Zero).
#
#   tools/sysroot armhf            # target libraries from Debian's armhf .debs
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-armhf.cmake
#   cmake --build build-armhf -j && ctest --test-dir build-armhf -L unit
#
# Compiler: Debian's gcc-arm-linux-gnueabihf. Libraries and headers: a sysroot
# unpacked from Debian's armhf packages by tools/sysroot, so the host's
# packages are never changed. Where it is: -DEL_SYSROOT=DIR, else
# $EL_XC_CACHE/sysroot-armhf, else
# build/xc/sysroot-armhf in the source tree (tools/sysroot's defaults).
#
# Tests: CMAKE_CROSSCOMPILING_EMULATOR runs every test binary under
# qemu-arm-static with -L <sysroot>, so the target's dynamic loader and
# libraries come from the sysroot; binfmt_misc is not needed.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(EL_XC_TRIPLET arm-linux-gnueabihf)
set(EL_XC_DEB_ARCH armhf)
set(EL_XC_QEMU qemu-arm-static)

# 32-bit glibc's defaults are a 32-bit off_t/ino_t and time_t. The first makes
# readdir() fail with EOVERFLOW on a 64-bit kernel's file systems (qemu-user
# on x86_64, and Raspberry Pi OS's 32-bit userland on its default 64-bit
# kernel) and caps files at 2 GiB; the second cannot represent times after
# 2038-01-19 or before 1901 (RFC 3339 formatting with gmtime_r). glibc 2.34+
# offers 64-bit variants of both; no library API the daemon calls (Paho,
# SQLite, curl, inih, zlib, libsystemd) passes off_t or time_t, so mixing
# with bookworm's armhf libraries is safe.
set(CMAKE_C_FLAGS_INIT "-D_FILE_OFFSET_BITS=64 -D_TIME_BITS=64")

include("${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake")
