# Optional BLAS backend for the large matrix products (src/ops/blas_product.hpp).
#   -DDEPASS_BLAS=OFF (default)   Eigen's own products only
#   -DDEPASS_BLAS=AUTO            use OpenBLAS when Debian's OpenMP build is installed
#                                 (libopenblas-openmp-dev), else Eigen's own products
#   -DDEPASS_BLAS=ON              require it (configuration fails without it)
# Off by default: measured no faster than Eigen inside the decomposed pass on the test machines
# (docs/results.md), and it changes the last bits of float results.
# Only the OpenMP build of OpenBLAS is accepted: it takes its threads from the same OpenMP
# runtime as depass, runs on one thread inside our parallel regions and sleeps with our wait
# policy, where the pthreads build would start a second pool that competes for the cores.
set(DEPASS_BLAS OFF CACHE STRING "BLAS backend for the large products: AUTO, ON or OFF")
set_property(CACHE DEPASS_BLAS PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${DEPASS_BLAS}" _depass_blas)
if(NOT _depass_blas MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "DEPASS_BLAS must be AUTO, ON or OFF, not '${DEPASS_BLAS}'")
endif()

set(DEPASS_BLAS_FOUND OFF)
if(NOT _depass_blas STREQUAL "OFF")
  if(NOT DEPASS_OPENMP)
    set(_depass_blas_why "DEPASS_OPENMP is OFF (the OpenMP build of OpenBLAS needs the OpenMP runtime)")
  else()
    # Debian installs each OpenBLAS variant in its own directory; look in the OpenMP one only.
    set(_depass_blas_arch "${CMAKE_LIBRARY_ARCHITECTURE}")
    find_path(DEPASS_OPENBLAS_INCLUDE_DIR cblas.h
              PATHS /usr/include/${_depass_blas_arch}/openblas-openmp NO_DEFAULT_PATH)
    find_library(DEPASS_OPENBLAS_LIBRARY openblas
                 PATHS /usr/lib/${_depass_blas_arch}/openblas-openmp NO_DEFAULT_PATH)
    if(DEPASS_OPENBLAS_INCLUDE_DIR AND DEPASS_OPENBLAS_LIBRARY)
      set(DEPASS_BLAS_FOUND ON)  # its parallel kind is checked when it runs (blas_summary)
    else()
      set(_depass_blas_why "the OpenMP build of OpenBLAS (Debian package libopenblas-openmp-dev) is not installed")
    endif()
  endif()
  if(NOT DEPASS_BLAS_FOUND AND _depass_blas STREQUAL "ON")
    message(FATAL_ERROR "DEPASS_BLAS=ON, but ${_depass_blas_why}")
  endif()
endif()

if(DEPASS_BLAS_FOUND)
  message(STATUS "depass: large products through OpenBLAS (OpenMP build): ${DEPASS_OPENBLAS_LIBRARY}")
  target_include_directories(depass_lib PRIVATE ${DEPASS_OPENBLAS_INCLUDE_DIR})
  target_compile_definitions(depass_lib PRIVATE DEPASS_HAVE_BLAS=1)
  target_link_libraries(depass_lib PRIVATE ${DEPASS_OPENBLAS_LIBRARY})
elseif(_depass_blas STREQUAL "AUTO")
  message(STATUS "depass: Eigen's own products (DEPASS_BLAS=AUTO: ${_depass_blas_why})")
else()
  message(STATUS "depass: Eigen's own products (DEPASS_BLAS=OFF)")
endif()
