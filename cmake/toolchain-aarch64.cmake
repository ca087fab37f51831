# toolchain-aarch64.cmake — cross-compile edgelambda for 64-bit ARM Linux
# (Raspberry Pi 3/4/5 and Zero 2 on a 64-bit OS; Debian arch arm64).
#
#   tools/sysroot arm64            # target libraries from Debian's arm64 .debs
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
#   cmake --build build-aarch64 -j && ctest --test-dir build-aarch64 -L unit
#
# Compiler: Debian's gcc-aarch64-linux-gnu. Libraries and headers: a sysroot
# unpacked from Debian's arm64 packages by tools/sysroot, so the host's
# packages are never changed. Where it is: -DEL_SYSROOT=DIR, else
# $EL_XC_CACHE/sysroot-arm64, else
# build/xc/sysroot-arm64 in the source tree (tools/sysroot's defaults).
#
# Tests: CMAKE_CROSSCOMPILING_EMULATOR runs every test binary under
# qemu-aarch64-static with -L <sysroot>, so the target's dynamic loader and
# libraries come from the sysroot; binfmt_misc is not needed.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(EL_XC_TRIPLET aarch64-linux-gnu)
set(EL_XC_DEB_ARCH arm64)
set(EL_XC_QEMU qemu-aarch64-static)

include("${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake")
