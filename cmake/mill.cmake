# mill_library(NAME SOURCES ... DEPS ...): one library per src/<module>, linked by its edges.
function(mill_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(mill_${name} STATIC ${ARG_SOURCES})
  target_include_directories(mill_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(mill_${name} PUBLIC ${ARG_DEPS})
endfunction()

# mill_test(NAME SOURCES ... DEPS ... LABELS ... [TIMEOUT SECONDS] [TEST_FILTER PATTERN]): one
# gtest binary, each of its tests registered with ctest.
#
# LABELS say what its tests need (README, "Tests and benchmarks"): `unit` = hermetic (no
# root, no change to the host); `system` = root, runc, mounts or the host's network;
# `integration` = the real `mill` binary (with `system` too when it runs containers).
# TIMEOUT bounds each test (default: 300 s for unit, 600 s for system, 900 s for
# integration), so a hung test fails instead of stalling the run.
function(mill_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT;TEST_FILTER" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  # Every test binary reuses one precompiled gtest header (tests/CMakeLists.txt).
  if(TARGET mill_test_pch)
    target_precompile_headers(${name} REUSE_FROM mill_test_pch)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
    if("system" IN_LIST ARG_LABELS)
      set(ARG_TIMEOUT 600)
    endif()
    if("integration" IN_LIST ARG_LABELS)
      set(ARG_TIMEOUT 900)
    endif()
  endif()
  set(filter)
  if(ARG_TEST_FILTER)
    set(filter TEST_FILTER ${ARG_TEST_FILTER})
  endif()
  include(GoogleTest)
  # NO_PRETTY_VALUES: a parameterized test is named by its suffix ("…/Sqlite"), not by
  # a dump of its parameter's bytes.
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 NO_PRETTY_VALUES ${filter}
                       PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  # gtest_discover_tests passes one value per property, so a list of labels is set by a
  # script ctest runs after the discovered tests are added.
  set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake)
  file(WRITE ${labels_file}
       "if(${name}_TESTS)\n  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\")\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
endfunction()
