# One helper per component: a library target troupe_<name>, its alias troupe::<name> (the name it
# is exported under, for find_package(troupe)), and a GoogleTest binary registered with CTest,
# each test with a TIMEOUT.
include_guard(GLOBAL)
include(GNUInstallDirs)

# troupe_component(NAME SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# Headers in include/ next to the CMakeLists, installed under include/.
function(troupe_component name)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(troupe_${name} ${arg_SOURCES})
  add_library(troupe::${name} ALIAS troupe_${name})
  set_target_properties(troupe_${name} PROPERTIES EXPORT_NAME ${name}
    POSITION_INDEPENDENT_CODE ON)
  target_include_directories(troupe_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(troupe_${name} PUBLIC cxx_std_17)
  target_compile_options(troupe_${name} PRIVATE ${TROUPE_WARNINGS})
  target_link_libraries(troupe_${name} PUBLIC ${arg_PUBLIC_DEPS} PRIVATE ${arg_PRIVATE_DEPS})
  install(TARGETS troupe_${name} EXPORT troupeTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
    install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
endfunction()

# troupe_test(NAME SOURCES ... DEPS ... [TIMEOUT s] [LABELS ...] [RUN_SERIAL])
# Registers each gtest case of the binary with CTest (gtest_discover_tests), all with TIMEOUT.
# RUN_SERIAL: its cases run alone (multi-process tests that start their own clusters).
function(troupe_test name)
  cmake_parse_arguments(arg "RUN_SERIAL" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 60)
  endif()
  add_executable(${name} ${arg_SOURCES})
  target_compile_options(${name} PRIVATE ${TROUPE_WARNINGS})
  target_link_libraries(${name} PRIVATE ${arg_DEPS} GTest::gtest GTest::gtest_main)
  set(serial FALSE)
  if(arg_RUN_SERIAL)
    set(serial TRUE)
  endif()
  gtest_discover_tests(${name} PROPERTIES TIMEOUT ${arg_TIMEOUT} LABELS "${arg_LABELS}"
    RUN_SERIAL ${serial} DISCOVERY_TIMEOUT 60)
endfunction()

# troupe_fuzz_target(NAME SOURCES ... DEPS ...): a libFuzzer binary of a TROUPE_FUZZ build, its
# seed corpus in tests/fuzz/corpus/NAME (./dev fuzz runs it).
function(troupe_fuzz_target name)
  cmake_parse_arguments(arg "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${arg_SOURCES})
  target_compile_options(${name} PRIVATE ${TROUPE_WARNINGS} -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${name} PRIVATE ${arg_DEPS})
endfunction()

# troupe_add_cuda_module(TARGET): a program that may start GPU workers gets the CUDA module built
# beside it (it is loaded at run time, so nothing links it).
function(troupe_add_cuda_module target)
  if(TARGET troupe_cuda)
    add_dependencies(${target} troupe_cuda)
  endif()
endfunction()
