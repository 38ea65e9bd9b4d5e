# Small helpers so each directory's CMakeLists.txt stays a list of names.

# tw_library(NAME SOURCES a.cc b.cc DEPS x y)
function(tw_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} tw_options)
endfunction()

# tw_binary(NAME SOURCES main.cc DEPS libs)
function(tw_binary name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} tw_options)
endfunction()

# tw_test(NAME SOURCES x_test.cc DEPS libs) — one GoogleTest binary registered with CTest.
function(tw_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main tw_options)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 300)
endfunction()

# tw_integration_test(NAME SCRIPT path.py [TIMEOUT s]) — a Python integration test that runs the
# real binaries of this build directory over loopback.
function(tw_integration_test name)
  cmake_parse_arguments(ARG "" "SCRIPT;TIMEOUT" "" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name}
           COMMAND ${Python3_EXECUTABLE} -u ${PROJECT_SOURCE_DIR}/${ARG_SCRIPT})
  set_tests_properties(${name} PROPERTIES
    LABELS integration TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "TOKENWAY_BIN_DIR=${PROJECT_BINARY_DIR};PYTHONPATH=${PROJECT_SOURCE_DIR}/tests/integration;PYTHONDONTWRITEBYTECODE=1")
endfunction()

# tw_fuzz_target(NAME SOURCES fuzz.cc DEPS libs CORPUS dir)
# Always builds a replay binary that runs every file of the seed corpus as a normal test; with
# TOKENWAY_FUZZ=ON (clang) it also builds the libFuzzer binary NAME_fuzzer.
function(tw_fuzz_target name)
  cmake_parse_arguments(ARG "" "CORPUS" "SOURCES;DEPS" ${ARGN})
  add_executable(${name}_replay ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cc)
  target_link_libraries(${name}_replay PRIVATE ${ARG_DEPS} tw_options)
  add_test(NAME ${name}_corpus COMMAND ${name}_replay ${PROJECT_SOURCE_DIR}/${ARG_CORPUS})
  set_tests_properties(${name}_corpus PROPERTIES LABELS fuzz TIMEOUT 300)
  if(TOKENWAY_FUZZ)
    add_executable(${name}_fuzzer ${ARG_SOURCES})
    target_link_libraries(${name}_fuzzer PRIVATE ${ARG_DEPS} tw_options)
    target_compile_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer)
    target_link_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer)
  endif()
endfunction()
