# Optional MPI: one run split over several processes, `mpirun -np P depass attribute|eval ...`
# (include/depass/distributed.hpp, docs/scaling.md).
#   -DDEPASS_MPI=AUTO (default)   built when an MPI library is found (Debian: libopenmpi-dev)
#   -DDEPASS_MPI=ON               required (configuration fails without it)
#   -DDEPASS_MPI=OFF              not built: no MPI code is compiled, every command runs as one process
# Only src/mpi/mpi_group.cpp calls MPI (its C API); the library's one-process group is the
# fallback. With it, the tests driving mpirun are registered too (tests/mpi/).
set(DEPASS_MPI AUTO CACHE STRING "Split runs over MPI ranks: AUTO, ON or OFF")
set_property(CACHE DEPASS_MPI PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${DEPASS_MPI}" _depass_mpi)
if(NOT _depass_mpi MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "DEPASS_MPI must be AUTO, ON or OFF, not '${DEPASS_MPI}'")
endif()

set(DEPASS_MPI_BUILD OFF)
if(NOT _depass_mpi STREQUAL "OFF")
  # The project is C++ only: the CXX component, without the (deprecated) MPI C++ bindings; only
  # MPI's C API is called.
  set(MPI_CXX_SKIP_MPICXX ON)
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(DEPASS_MPI_BUILD ON)
  elseif(_depass_mpi STREQUAL "ON")
    message(FATAL_ERROR "DEPASS_MPI=ON, but no MPI library was found (Debian: apt-get install libopenmpi-dev openmpi-bin)")
  endif()
endif()

if(DEPASS_MPI_BUILD)
  target_sources(depass_lib PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src/mpi/mpi_group.cpp)
  target_link_libraries(depass_lib PRIVATE MPI::MPI_CXX)
  target_compile_definitions(depass_lib PRIVATE DEPASS_HAVE_MPI)
  message(STATUS "depass: MPI ${MPI_CXX_VERSION} (runs split over ranks with ${MPIEXEC_EXECUTABLE})")
else()
  message(STATUS "depass: no MPI (DEPASS_MPI=${DEPASS_MPI}): every run is one process")
endif()
