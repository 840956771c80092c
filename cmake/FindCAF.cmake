# Debian's CAF 0.17.6 ships no CAFConfig.cmake. Defines CAF::core and CAF::io.
find_path(CAF_INCLUDE_DIR caf/all.hpp)
find_library(CAF_CORE_LIBRARY caf_core)
find_library(CAF_IO_LIBRARY caf_io)
if(CAF_CORE_LIBRARY)  # libcaf_core.so -> libcaf_core.so.0.17.6
  get_filename_component(_caf_real "${CAF_CORE_LIBRARY}" REALPATH)
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+$" CAF_VERSION "${_caf_real}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF VERSION_VAR CAF_VERSION
  REQUIRED_VARS CAF_CORE_LIBRARY CAF_IO_LIBRARY CAF_INCLUDE_DIR)
if(CAF_FOUND AND NOT TARGET CAF::core)
  find_package(Threads REQUIRED)
  add_library(CAF::core UNKNOWN IMPORTED)
  set_target_properties(CAF::core PROPERTIES IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
    INTERFACE_COMPILE_FEATURES cxx_std_17 INTERFACE_LINK_LIBRARIES Threads::Threads)
  add_library(CAF::io UNKNOWN IMPORTED)
  set_target_properties(CAF::io PROPERTIES IMPORTED_LOCATION "${CAF_IO_LIBRARY}"
    INTERFACE_LINK_LIBRARIES CAF::core)
endif()
mark_as_advanced(CAF_INCLUDE_DIR CAF_CORE_LIBRARY CAF_IO_LIBRARY)
