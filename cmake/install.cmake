# install.cmake -- install rules: header, both libraries, the CMake package
# (find_package(sockkit) gives sockkit::sockkit and sockkit::sockkit_static)
# and the pkg-config file sockkit.pc.
include(CMakePackageConfigHelpers)

set(SK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/sockkit)

# Components let packagers split the shared library (runtime) from what is
# needed to build against it (development); a plain install gets both.
install(FILES ${PROJECT_SOURCE_DIR}/include/sockkit.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development)
install(TARGETS sockkit sockkit_static EXPORT sockkitTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
                COMPONENT runtime NAMELINK_COMPONENT development
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)

install(EXPORT sockkitTargets NAMESPACE sockkit:: FILE sockkitTargets.cmake
        DESTINATION ${SK_CMAKE_DIR} COMPONENT development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/sockkitConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/sockkitConfig.cmake
                              INSTALL_DESTINATION ${SK_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sockkitConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sockkitConfig.cmake
              ${PROJECT_BINARY_DIR}/sockkitConfigVersion.cmake
        DESTINATION ${SK_CMAKE_DIR} COMPONENT development)

# sockkit.pc. Directories given as absolute paths are written as they are;
# relative ones hang off ${prefix} so the file stays readable and editable.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(SK_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
  set(SK_PC_DEST "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
else()
  set(SK_PC_LIBDIR "\${exec_prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(SK_PC_DEST "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(SK_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(SK_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# The prefix is the one thing not known yet: `cmake --install --prefix` may
# pick another than CMAKE_INSTALL_PREFIX. So everything else is filled in now,
# and the prefix when installing, in a staging directory of its own for each
# destination (removed afterwards) so that concurrent installs to different
# prefixes do not race.
set(SK_PC_PREFIX "@SK_PC_PREFIX@")
configure_file(${PROJECT_SOURCE_DIR}/libsockkit.pc.in ${PROJECT_BINARY_DIR}/sockkit.pc.in @ONLY)
install(CODE "
  set(SK_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  string(MD5 sk_pc_stage \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
  set(sk_pc_stage \"${PROJECT_BINARY_DIR}/pkgconfig/\${sk_pc_stage}\")
  configure_file(\"${PROJECT_BINARY_DIR}/sockkit.pc.in\" \"\${sk_pc_stage}/sockkit.pc\" @ONLY)
  file(INSTALL DESTINATION \"${SK_PC_DEST}\" TYPE FILE FILES \"\${sk_pc_stage}/sockkit.pc\")
  file(REMOVE_RECURSE \"\${sk_pc_stage}\")
" COMPONENT development)
