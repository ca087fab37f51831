# toolchain-common.cmake — what the cross toolchain files share: the sysroot
# (from tools/sysroot), the compiler and find paths, pkg-config confined to the
# target's .pc files, and QEMU user mode as the emulator for tests. Included by
# toolchain-aarch64.cmake and toolchain-armhf.cmake after they set
# CMAKE_SYSTEM_PROCESSOR, EL_XC_TRIPLET, EL_XC_DEB_ARCH and EL_XC_QEMU.

# --- the sysroot (re-read in try_compile projects, hence the forwarding) ---
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES EL_SYSROOT)
if(NOT EL_SYSROOT)
  if(DEFINED ENV{EL_XC_CACHE})
    set(EL_SYSROOT "$ENV{EL_XC_CACHE}/sysroot-${EL_XC_DEB_ARCH}")
  else()
    get_filename_component(EL_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build/xc/sysroot-${EL_XC_DEB_ARCH}" ABSOLUTE)
  endif()
  set(EL_SYSROOT "${EL_SYSROOT}" CACHE PATH "Target root from tools/sysroot ${EL_XC_DEB_ARCH}")
endif()
if(NOT EXISTS "${EL_SYSROOT}/usr/include/${EL_XC_TRIPLET}")
  message(FATAL_ERROR "No ${EL_XC_DEB_ARCH} sysroot at ${EL_SYSROOT}: run tools/sysroot ${EL_XC_DEB_ARCH}")
endif()

set(CMAKE_C_COMPILER ${EL_XC_TRIPLET}-gcc)
set(CMAKE_SYSROOT "${EL_SYSROOT}")
set(CMAKE_LIBRARY_ARCHITECTURE ${EL_XC_TRIPLET})
set(CMAKE_FIND_ROOT_PATH "${EL_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must see only the target's .pc files: otherwise FindCURL and
# friends pick the host's and the build fails deep inside glibc's headers.
set(ENV{PKG_CONFIG_LIBDIR} "${EL_SYSROOT}/usr/lib/${EL_XC_TRIPLET}/pkgconfig:${EL_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${EL_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")

# Shared libraries in the sysroot link against others by soname
# (libcurl -> libnghttp2, ...): let the linker find those there too.
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-Wl,-rpath-link,${EL_SYSROOT}/lib/${EL_XC_TRIPLET}:${EL_SYSROOT}/usr/lib/${EL_XC_TRIPLET}")

find_program(EL_XC_QEMU_PATH ${EL_XC_QEMU} NO_CMAKE_FIND_ROOT_PATH)
if(NOT EL_XC_QEMU_PATH)
  set(EL_XC_QEMU_PATH ${EL_XC_QEMU}) # still usable once qemu-user-static is installed
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${EL_XC_QEMU_PATH};-L;${EL_SYSROOT}")
