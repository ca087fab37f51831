# packaging/CPackConfig.cmake — install layout and the Debian package (CPack).
# Included at the end of the top-level CMakeLists.txt.
#
#   cmake --build build && (cd build && cpack -G DEB)   # -> edgelambda_<ver>_<arch>.deb
#
# The same rules give amd64 (native build), arm64 and armhf packages (a build
# with cmake/toolchain-aarch64.cmake or cmake/toolchain-armhf.cmake): the
# architecture comes from the toolchain file (EL_XC_DEB_ARCH), else from
# `dpkg --print-architecture`.
#
# Contents (tests/integration/test_packages.py checks them):
#   /usr/bin/edgelambdad, /usr/bin/edgelambda    stripped
#   /lib/systemd/system/edgelambdad.service      Type=notify, watchdog, sandboxed
#   /etc/edgelambda/edgelambda.conf              conffile: edgelambda.conf.example,
#                                                every key commented = the defaults
#   /var/lib/edgelambda/                         state directory (master log)
#   /usr/share/doc/edgelambda/                   README.md, DEPLOY.md, the example config,
#                                                copyright (Debian's machine-readable format:
#                                                Apache-2.0, packaging/copyright), changelog.gz
#                                                (packaging/changelog.in, Debian's format)
#   /usr/share/man/man{1,5,8}/                   edgelambda.1, edgelambda.conf.5, edgelambdad.8,
#                                                gzip -9n; edgelambda.conf.5 is generated at
#                                                build time by `edgelambdad --help-config=man`
#                                                from the configuration table, so it cannot
#                                                drift (cross builds run it under the
#                                                toolchain's CMAKE_CROSSCOMPILING_EMULATOR)
#   /usr/share/bash-completion/completions/edgelambda   tools/cli/edgelambda-completion.bash
#   /usr/share/edgelambda/web/                   the live page (web/: index.html, app.js and
#                                                the vendored libraries with their licences),
#                                                served by mosquitto's http_dir; the conf.d
#                                                snippet that does it is in the doc directory
#                                                (mosquitto-live-page.conf, README "Live page")
# Maintainer scripts (packaging/postinst, prerm, postrm) create the system
# user "edgelambda" and enable/start/stop the unit like debhelper would.
#
# Depends: dpkg-shlibdeps cannot work for a cross build (it needs the target's
# dpkg database), so a table below maps each shared library the binaries need
# (DT_NEEDED, read with readelf at cpack time) to its Debian package.

set(EL_PKG_SYSTEMD_UNIT_DIR /lib/systemd/system)
set(EL_PKG_CONF_DIR /etc/edgelambda)
set(EL_PKG_STATE_DIR /var/lib/edgelambda)
set(EL_PKG_DOC_DIR share/doc/edgelambda)

install(FILES ${CMAKE_CURRENT_LIST_DIR}/edgelambdad.service DESTINATION ${EL_PKG_SYSTEMD_UNIT_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/edgelambda.conf.example DESTINATION ${EL_PKG_CONF_DIR}
        RENAME edgelambda.conf)
install(DIRECTORY DESTINATION ${EL_PKG_STATE_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/edgelambda.conf.example
        ${CMAKE_CURRENT_LIST_DIR}/copyright DESTINATION ${EL_PKG_DOC_DIR})
if(EXISTS ${CMAKE_SOURCE_DIR}/docs/DEPLOY.md)
  install(FILES ${CMAKE_SOURCE_DIR}/docs/DEPLOY.md DESTINATION ${EL_PKG_DOC_DIR})
endif()

# The package's contact (Maintainer). The default is an RFC 2606 .invalid
# address: set -DEL_PKG_MAINTAINER="Name <mail>" for packages you distribute.
set(EL_PKG_MAINTAINER "edgelambda maintainers <maintainers@edgelambda.invalid>"
    CACHE STRING "Maintainer of the .deb (Name <mail>)")

# Manual pages and the changelog, compressed as Debian wants them (gzip -9n:
# no name or time stamp, so builds are reproducible). edgelambda.conf(5) is
# printed by the daemon just built; a target executable as COMMAND runs under
# CMAKE_CROSSCOMPILING_EMULATOR in a cross build.
find_program(EL_GZIP gzip REQUIRED)
set(EL_MAN_BUILD_DIR ${CMAKE_BINARY_DIR}/man)
file(MAKE_DIRECTORY ${EL_MAN_BUILD_DIR})
add_custom_command(OUTPUT ${EL_MAN_BUILD_DIR}/edgelambda.conf.5
  COMMAND edgelambdad --help-config=man > ${EL_MAN_BUILD_DIR}/edgelambda.conf.5
  DEPENDS edgelambdad
  COMMENT "Generating edgelambda.conf(5) from the configuration table" VERBATIM)
configure_file(${CMAKE_CURRENT_LIST_DIR}/changelog.in ${CMAKE_BINARY_DIR}/changelog @ONLY)
set(EL_GZ_FILES)
foreach(src ${CMAKE_SOURCE_DIR}/docs/man/edgelambda.1 ${CMAKE_SOURCE_DIR}/docs/man/edgelambdad.8
            ${EL_MAN_BUILD_DIR}/edgelambda.conf.5 ${CMAKE_BINARY_DIR}/changelog)
  get_filename_component(name ${src} NAME)
  set(gz ${EL_MAN_BUILD_DIR}/${name}.gz)
  add_custom_command(OUTPUT ${gz} COMMAND ${EL_GZIP} -9n -c ${src} > ${gz} DEPENDS ${src} VERBATIM)
  list(APPEND EL_GZ_FILES ${gz})
  if(name MATCHES "\\.([158])$")
    install(FILES ${gz} DESTINATION share/man/man${CMAKE_MATCH_1})
  else()
    install(FILES ${gz} DESTINATION ${EL_PKG_DOC_DIR})
  endif()
endforeach()
add_custom_target(el_docs ALL DEPENDS ${EL_GZ_FILES})
install(FILES ${CMAKE_SOURCE_DIR}/tools/cli/edgelambda-completion.bash
        DESTINATION share/bash-completion/completions RENAME edgelambda)
# The live page: static files only, nothing of ours serves them (mosquitto does).
install(DIRECTORY ${CMAKE_SOURCE_DIR}/web/ DESTINATION share/edgelambda/web
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/mosquitto-live-page.conf DESTINATION ${EL_PKG_DOC_DIR})

# soname -> Debian package (bookworm); the same on every architecture.
# packaging/deb-depends.cmake turns the binaries' DT_NEEDED entries into
# Depends at cpack time through this table, and fails on a library missing
# from it.
set(CPACK_EL_SONAME_MAP
  "libc.so.6=libc6 (>= 2.36)"
  "libm.so.6=libc6 (>= 2.36)"
  "libpaho-mqtt3as.so.1=libpaho-mqtt1.3 (>= 1.3.11)"
  "libpaho-mqtt3a.so.1=libpaho-mqtt1.3 (>= 1.3.11)"
  "libmosquitto.so.1=libmosquitto1 (>= 2.0)"
  "libsqlite3.so.0=libsqlite3-0 (>= 3.40)"
  "libcurl.so.4=libcurl4 (>= 7.88)"
  "libinih.so.1=libinih1 (>= 55)"
  "libz.so.1=zlib1g (>= 1:1.2.13)"
  "libsystemd.so.0=libsystemd0 (>= 252)"
  "libssl.so.3=libssl3 (>= 3.0)"
  "libcrypto.so.3=libssl3 (>= 3.0)"
  "libzstd.so.1=libzstd1 (>= 1.5)"
  "libcbor.so.0.8=libcbor0.8 (>= 0.8)"
  "libcjson.so.1=libcjson1 (>= 1.7)"
  "libprotobuf-c.so.1=libprotobuf-c1 (>= 1.4)")
set(CPACK_EL_BINARIES ${CMAKE_BINARY_DIR}/edgelambdad ${CMAKE_BINARY_DIR}/edgelambda)
set(CPACK_EL_READELF "${CMAKE_READELF}")
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_LIST_DIR}/deb-depends.cmake)

if(EL_XC_DEB_ARCH)
  set(EL_PKG_ARCH ${EL_XC_DEB_ARCH})
else()
  find_program(EL_DPKG dpkg)
  if(EL_DPKG)
    execute_process(COMMAND ${EL_DPKG} --print-architecture OUTPUT_VARIABLE EL_PKG_ARCH
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
  else()
    set(EL_PKG_ARCH amd64)
  endif()
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME edgelambda)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "edgelambda")
set(CPACK_PACKAGE_CONTACT "${EL_PKG_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Lambda-Architecture runtime for Raspberry Pi-class boards (MQTT -> SQLite)")
set(CPACK_PACKAGE_DESCRIPTION
    "edgelambdad subscribes to a local MQTT broker, makes every reading durable\n\
in an append-only SQLite master log on flash, keeps real-time views in RAM,\n\
recomputes batch views when the board is idle, answers queries over MQTT and\n\
ships the master log upstream over HTTPS. Includes the edgelambda CLI.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${EL_PKG_ARCH})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "mosquitto")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto-clients, sqlite3")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_CURRENT_LIST_DIR}/conffiles;${CMAKE_CURRENT_LIST_DIR}/postinst;${CMAKE_CURRENT_LIST_DIR}/prerm;${CMAKE_CURRENT_LIST_DIR}/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_SOURCE_GENERATOR "")
include(CPack)
