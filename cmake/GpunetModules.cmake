# Helpers that keep "folder = library = namespace" and the layering of src/LAYERS.
file(STRINGS "${PROJECT_SOURCE_DIR}/src/LAYERS" _gpunet_layer_lines REGEX "^[a-z]+:")
set(GPUNET_MODULES "")
foreach(_line IN LISTS _gpunet_layer_lines)
  string(REGEX MATCH "^([a-z]+):(.*)$" _m "${_line}")
  set(_mod "${CMAKE_MATCH_1}")
  string(STRIP "${CMAKE_MATCH_2}" _deps)
  separate_arguments(_deps)
  set(GPUNET_ALLOWED_${_mod} "${_deps}")
  list(APPEND GPUNET_MODULES "${_mod}")
endforeach()

# gpunet_add_library(<module> SOURCES ... [DEPS <gpunet modules>] [PUBLIC_LIBS ...] [PRIVATE_LIBS ...])
# Creates static library gpunet_<module>; configuration fails when DEPS names a
# module that src/LAYERS does not allow.
function(gpunet_add_library mod)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  foreach(d IN LISTS A_DEPS)
    if(NOT d IN_LIST GPUNET_ALLOWED_${mod})
      message(FATAL_ERROR "layering: gpunet_${mod} may not link gpunet_${d} (see src/LAYERS)")
    endif()
  endforeach()
  add_library(gpunet_${mod} STATIC ${A_SOURCES})
  target_include_directories(gpunet_${mod} PUBLIC "${PROJECT_SOURCE_DIR}/src" "${PROJECT_BINARY_DIR}/generated")
  set(_links "")
  foreach(d IN LISTS A_DEPS)
    list(APPEND _links gpunet_${d})
  endforeach()
  target_link_libraries(gpunet_${mod} PUBLIC ${_links} ${A_PUBLIC_LIBS} PRIVATE ${A_PRIVATE_LIBS})
endfunction()

# gpunet_add_test(<name> SOURCES ... LIBS ... [LABELS ...] [TIMEOUT s])
# One GoogleTest binary, one ctest entry.
function(gpunet_add_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_LIBS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE "${PROJECT_SOURCE_DIR}/tests")
  add_test(NAME ${name} COMMAND ${name} --gtest_brief=1)
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "GPUNET_SOURCE_DIR=${PROJECT_SOURCE_DIR};GPUNET_BINARY_DIR=${PROJECT_BINARY_DIR}"
    LABELS "${A_LABELS}")
endfunction()

# gpunet_add_fuzzer(<name> SOURCES ... LIBS ...)
# A libFuzzer target, run for GPUNET_FUZZ_SECONDS inside ctest (clang builds with
# GPUNET_FUZZ=ON only). Seeds come from tests/fuzz/corpus/<name>/ when present.
function(gpunet_add_fuzzer name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  if(NOT GPUNET_FUZZ)
    return()
  endif()
  add_executable(${name} ${A_SOURCES})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${name} PRIVATE ${A_LIBS})
  set(_corpus "${PROJECT_BINARY_DIR}/fuzz-corpus/${name}")
  set(_seeds "${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name}")
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
      sh -c "mkdir -p '${_corpus}' && exec \"$0\" -max_total_time=${GPUNET_FUZZ_SECONDS} -rss_limit_mb=2048 -print_final_stats=1 '${_corpus}' $([ -d '${_seeds}' ] && echo '${_seeds}')" $<TARGET_FILE:${name}>)
  set_tests_properties(${name} PROPERTIES LABELS "fuzz" TIMEOUT 600)
endfunction()
