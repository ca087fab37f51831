# packaging/deb-depends.cmake — CPACK_PROJECT_CONFIG_FILE: computes the .deb's
# Depends from the shared libraries the binaries actually need.
#
# Runs inside cpack, once per generator. Reads DT_NEEDED of every binary in
# CPACK_EL_BINARIES with CPACK_EL_READELF (the target's readelf, so it works for
# cross builds where dpkg-shlibdeps cannot) and maps each soname through
# CPACK_EL_SONAME_MAP ("soname=package (>= version)"), both set in
# packaging/CPackConfig.cmake. An unknown soname is an error, so a new library
# cannot be shipped without its dependency.

if(NOT CPACK_GENERATOR STREQUAL "DEB")
  return()
endif()

set(_el_depends adduser)
foreach(bin ${CPACK_EL_BINARIES})
  if(NOT EXISTS "${bin}")
    message(FATAL_ERROR "deb-depends: ${bin} is not built")
  endif()
  execute_process(COMMAND ${CPACK_EL_READELF} -d "${bin}" OUTPUT_VARIABLE _el_dyn
                  RESULT_VARIABLE _el_rc)
  if(NOT _el_rc EQUAL 0)
    message(FATAL_ERROR "deb-depends: ${CPACK_EL_READELF} -d ${bin} failed")
  endif()
  string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[[^]\n]*\\]" _el_needed "${_el_dyn}")
  foreach(line ${_el_needed})
    string(REGEX MATCH "\\[(.*)\\]" _ "${line}")
    set(soname "${CMAKE_MATCH_1}")
    if(soname MATCHES "^ld-linux")
      continue() # the dynamic loader comes with libc6
    endif()
    set(pkg "")
    foreach(entry ${CPACK_EL_SONAME_MAP})
      string(REGEX MATCH "^([^=]*)=(.*)$" _ "${entry}")
      if(CMAKE_MATCH_1 STREQUAL soname)
        set(pkg "${CMAKE_MATCH_2}")
      endif()
    endforeach()
    if(pkg STREQUAL "")
      message(FATAL_ERROR "deb-depends: ${bin} needs ${soname}, which has no package in "
                          "CPACK_EL_SONAME_MAP (packaging/CPackConfig.cmake)")
    endif()
    list(FIND _el_depends "${pkg}" _el_found)
    if(_el_found EQUAL -1)
      list(APPEND _el_depends "${pkg}")
    endif()
  endforeach()
endforeach()
list(SORT _el_depends)
list(JOIN _el_depends ", " CPACK_DEBIAN_PACKAGE_DEPENDS)
