# mill_library(NAME SOURCES ... DEPS ...): one library per src/<module>, linked by its edges.
function(mill_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(mill_${name} STATIC ${ARG_SOURCES})
  target_include_directories(mill_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(mill_${name} PUBLIC ${ARG_DEPS})
endfunction()

# mill_test(NAME SOURCES ... DEPS ... [LABELS ...]): one gtest binary, registered with ctest.
function(mill_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  # Every test binary reuses one precompiled gtest header (tests/CMakeLists.txt).
  if(TARGET mill_test_pch)
    target_precompile_headers(${name} REUSE_FROM mill_test_pch)
  endif()
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}")
endfunction()
