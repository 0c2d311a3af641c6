# Adds the pinned llama.cpp (llama, llama-common, mtmd, ggml) to the build.
#
# The source is never part of this repository: scripts/setup fetches and verifies it into
# the cache directory, or MUSE_LLAMA_DIR points at an existing checkout.

# A directory that setup chose earlier is asked again: a changed patches/ names a new tree.
if (NOT MUSE_LLAMA_DIR OR MUSE_LLAMA_DIR STREQUAL MUSE_LLAMA_DIR_FROM_SETUP)
    execute_process(
        COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/scripts/setup
        OUTPUT_VARIABLE _muse_setup_out
        RESULT_VARIABLE _muse_setup_rc
        OUTPUT_STRIP_TRAILING_WHITESPACE)
    if (NOT _muse_setup_rc EQUAL 0)
        message(FATAL_ERROR "scripts/setup failed; run it by hand to see why, or pass -DMUSE_LLAMA_DIR=/path/to/llama.cpp")
    endif()
    string(REGEX REPLACE ".*\n" "" _muse_llama_dir "${_muse_setup_out}")
    set(MUSE_LLAMA_DIR "${_muse_llama_dir}" CACHE PATH "llama.cpp source checkout" FORCE)
    set(MUSE_LLAMA_DIR_FROM_SETUP "${_muse_llama_dir}" CACHE INTERNAL "")
endif()
if (NOT EXISTS "${MUSE_LLAMA_DIR}/include/llama.h")
    message(FATAL_ERROR "MUSE_LLAMA_DIR=${MUSE_LLAMA_DIR} is not a llama.cpp checkout (no include/llama.h)")
endif()
message(STATUS "Muse: llama.cpp from ${MUSE_LLAMA_DIR}")

# Static libraries: one self-contained muse binary, no rpath games.
set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_COMMON ON CACHE BOOL "" FORCE)
set(LLAMA_BUILD_TESTS OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_EXAMPLES OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_TOOLS OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_SERVER OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_APP OFF CACHE BOOL "" FORCE)
set(LLAMA_BUILD_MTMD ON CACHE BOOL "" FORCE)
set(LLAMA_OPENSSL OFF CACHE BOOL "" FORCE)
set(LLAMA_SUBPROCESS OFF CACHE BOOL "" FORCE)
set(LLAMA_ALL_WARNINGS OFF CACHE BOOL "" FORCE)
set(LLAMA_TOOLS_INSTALL OFF CACHE BOOL "" FORCE)
# ggml's RPC backend: --rpc spreads a model's layers over rpc-servers (engine/rpc.h).
set(GGML_RPC ON CACHE BOOL "" FORCE)

# Some x86 CPUs (and VMs) advertise AMX but fault on it: -march=native would then emit
# AMX tiles that die with SIGILL in the first matrix multiply. GCC lets explicit -mno-*
# flags win over -march=native whatever their order, so keep native tuning minus AMX.
# Set MUSE_ALLOW_AMX=ON on hardware where AMX really works.
option(MUSE_ALLOW_AMX "Let -march=native enable AMX (only where the CPU really runs it)" OFF)
if (NOT MUSE_ALLOW_AMX AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND NOT MSVC)
    include(CheckCCompilerFlag)
    check_c_compiler_flag("-mno-amx-tile" MUSE_HAS_NO_AMX_FLAG)
    if (MUSE_HAS_NO_AMX_FLAG)
        add_compile_options(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
    endif()
endif()

add_subdirectory(${MUSE_LLAMA_DIR} ${CMAKE_BINARY_DIR}/llama.cpp EXCLUDE_FROM_ALL)
# ggml's rpc-server from the same source (scripts/build rpc-server): what --rpc connects to.
# Built only when asked for; the test of --rpc starts two on loopback.
add_subdirectory(${MUSE_LLAMA_DIR}/tools/rpc ${CMAKE_BINARY_DIR}/llama.cpp/tools/rpc EXCLUDE_FROM_ALL)
add_custom_target(rpc-server DEPENDS ggml-rpc-server)
# llama-quantize turns muse-train's F32 output into the F16 / Q8_0 models Muse ships
# (scripts/train-tiny). Built only when asked for.
add_subdirectory(${MUSE_LLAMA_DIR}/tools/quantize ${CMAKE_BINARY_DIR}/llama.cpp/tools/quantize EXCLUDE_FROM_ALL)

if (MUSE_BUILD_BENCH)
    # llama.cpp's own benchmark tools, from the same source, for side-by-side ratios.
    add_subdirectory(${MUSE_LLAMA_DIR}/tools/llama-bench ${CMAKE_BINARY_DIR}/llama.cpp/tools/llama-bench)
    add_subdirectory(${MUSE_LLAMA_DIR}/tools/batched-bench ${CMAKE_BINARY_DIR}/llama.cpp/tools/batched-bench)
    # llama-server (bench/run-modes: one request with n = 4 completions against Muse's
    # contemplating mode). Built only when asked for (scripts/build llama-server), never by
    # default. Its embedded web UI is left empty: no npm build and no download of prebuilt
    # assets, so configuring stays offline; the server then runs without the UI.
    set(LLAMA_BUILD_UI OFF CACHE BOOL "" FORCE)
    set(LLAMA_USE_PREBUILT_UI OFF CACHE BOOL "" FORCE)
    # tools/ui finds its asset script through PROJECT_SOURCE_DIR, which here would be Muse's.
    set(_muse_project_source_dir "${PROJECT_SOURCE_DIR}")
    set(PROJECT_SOURCE_DIR "${MUSE_LLAMA_DIR}")
    add_subdirectory(${MUSE_LLAMA_DIR}/tools/ui ${CMAKE_BINARY_DIR}/llama.cpp/tools/ui EXCLUDE_FROM_ALL)
    set(PROJECT_SOURCE_DIR "${_muse_project_source_dir}")
    add_subdirectory(${MUSE_LLAMA_DIR}/tools/server ${CMAKE_BINARY_DIR}/llama.cpp/tools/server EXCLUDE_FROM_ALL)
    # llama-mtmd-cli (bench/run-perception: time to first token with an image). llama.cpp
    # builds it only with LLAMA_BUILD_TOOLS; Muse adds the same target from the same source,
    # on demand.
    find_package(Threads REQUIRED)
    add_executable(llama-mtmd-cli EXCLUDE_FROM_ALL ${MUSE_LLAMA_DIR}/tools/mtmd/mtmd-cli.cpp)
    target_link_libraries(llama-mtmd-cli PRIVATE llama-common mtmd Threads::Threads)
    target_include_directories(llama-mtmd-cli PRIVATE ${MUSE_LLAMA_DIR}/tools/mtmd)
    target_compile_features(llama-mtmd-cli PRIVATE cxx_std_17)
    set_target_properties(llama-mtmd-cli PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/llama.cpp/tools/mtmd)
endif()
