# Fetches the Envoy v3 API (.proto files of data-plane-api with their xds, udpa,
# validate and googleapis imports) from the pinned npm package @grpc/grpc-js-xds,
# checks its hash, patches validate.proto, and generates C++ for the closure of
# the messages legate implements into the build tree. Nothing here is committed.

set(LEGATE_XDS_NPM_PACKAGE "@grpc/grpc-js-xds" CACHE STRING "npm package carrying the xDS API protos")
set(LEGATE_XDS_NPM_VERSION "1.14.1" CACHE STRING "pinned version of that package")
set(LEGATE_XDS_NPM_SHA256 "fd27db4119c139d5b59e8fe99d109bed04bff491302743ae3bf096667105c607"
    CACHE STRING "sha256 of the packed tarball")
if(DEFINED ENV{LEGATE_CACHE_DIR})
  set(_default_cache "$ENV{LEGATE_CACHE_DIR}")
elseif(DEFINED ENV{HOME})
  set(_default_cache "$ENV{HOME}/.cache/legate")
else()
  set(_default_cache "${CMAKE_BINARY_DIR}/.cache")
endif()
set(LEGATE_CACHE_DIR "${_default_cache}" CACHE PATH "download cache shared across builds")

set(_tarball "${LEGATE_CACHE_DIR}/grpc-grpc-js-xds-${LEGATE_XDS_NPM_VERSION}.tgz")

function(_legate_check_tarball out)
  if(EXISTS "${_tarball}")
    file(SHA256 "${_tarball}" _sum)
    if(_sum STREQUAL LEGATE_XDS_NPM_SHA256)
      set(${out} TRUE PARENT_SCOPE)
      return()
    endif()
    message(WARNING "cached ${_tarball} has sha256 ${_sum}, expected ${LEGATE_XDS_NPM_SHA256}; fetching again")
    file(REMOVE "${_tarball}")
  endif()
  set(${out} FALSE PARENT_SCOPE)
endfunction()

_legate_check_tarball(_ok)
if(NOT _ok)
  find_program(NPM_EXECUTABLE npm REQUIRED)
  file(MAKE_DIRECTORY "${LEGATE_CACHE_DIR}")
  message(STATUS "Fetching ${LEGATE_XDS_NPM_PACKAGE}@${LEGATE_XDS_NPM_VERSION} with npm pack")
  execute_process(
    COMMAND "${NPM_EXECUTABLE}" pack "${LEGATE_XDS_NPM_PACKAGE}@${LEGATE_XDS_NPM_VERSION}"
            --pack-destination "${LEGATE_CACHE_DIR}" --silent
    RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "npm pack ${LEGATE_XDS_NPM_PACKAGE}@${LEGATE_XDS_NPM_VERSION} failed: ${_err}")
  endif()
  _legate_check_tarball(_ok)
  if(NOT _ok)
    message(FATAL_ERROR "${_tarball}: sha256 does not match the pin ${LEGATE_XDS_NPM_SHA256}")
  endif()
endif()

set(LEGATE_API_SRC "${CMAKE_BINARY_DIR}/xds-api")
set(_stamp "${LEGATE_API_SRC}/.extracted-${LEGATE_XDS_NPM_SHA256}")
if(NOT EXISTS "${_stamp}")
  file(REMOVE_RECURSE "${LEGATE_API_SRC}")
  file(MAKE_DIRECTORY "${LEGATE_API_SRC}")
  file(ARCHIVE_EXTRACT INPUT "${_tarball}" DESTINATION "${LEGATE_API_SRC}" PATTERNS "package/deps/*")
  # The packaged validate.proto predates the Envoy protos: StringRules lacks
  # ignore_empty, which the Envoy protos use. Add that one field.
  set(_validate "${LEGATE_API_SRC}/package/deps/protoc-gen-validate/validate/validate.proto")
  file(READ "${_validate}" _text)
  string(FIND "${_text}" "ignore_empty" _has)
  if(_has EQUAL -1)
    string(REPLACE "  optional bool strict = 25 [default = true];"
                   "  optional bool strict = 25 [default = true];\n\n  // Added by legate's build: newer protoc-gen-validate field the Envoy protos use.\n  optional bool ignore_empty = 26;"
                   _patched "${_text}")
    if(_patched STREQUAL _text)
      message(FATAL_ERROR "could not patch StringRules.ignore_empty into ${_validate}")
    endif()
    file(WRITE "${_validate}" "${_patched}")
  endif()
  file(TOUCH "${_stamp}")
endif()

set(_deps "${LEGATE_API_SRC}/package/deps")
set(LEGATE_API_INCLUDES
    "${_deps}/envoy-api" "${_deps}/xds" "${_deps}/googleapis" "${_deps}/protoc-gen-validate")

# The roots: every message legate implements (or reads) and everything they import.
set(LEGATE_API_ROOTS
    envoy/config/bootstrap/v3/bootstrap.proto
    envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto
    envoy/extensions/access_loggers/file/v3/file.proto
    envoy/extensions/access_loggers/stream/v3/stream.proto
    envoy/admin/v3/config_dump.proto
    envoy/admin/v3/server_info.proto
    envoy/config/route/v3/route.proto
    envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto
    envoy/extensions/filters/http/router/v3/router.proto
    envoy/extensions/upstreams/http/v3/http_protocol_options.proto
    envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.proto
    envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto
    envoy/config/trace/v3/zipkin.proto
    envoy/config/trace/v3/opentelemetry.proto
    # Cluster.load_balancing_policy: the ones legate maps onto its balancers, and
    # the other Envoy policies, so a list naming one first can be read (and skipped).
    envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto
    envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto
    envoy/extensions/load_balancing_policies/random/v3/random.proto
    envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto
    envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto
    envoy/extensions/load_balancing_policies/cluster_provided/v3/cluster_provided.proto
    envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3/client_side_weighted_round_robin.proto
    envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.proto
    envoy/extensions/load_balancing_policies/subset/v3/subset.proto
    envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto
    envoy/extensions/filters/listener/original_dst/v3/original_dst.proto)

find_package(Python3 REQUIRED COMPONENTS Interpreter)
execute_process(
  COMMAND "${Python3_EXECUTABLE}" "${CMAKE_SOURCE_DIR}/tools/proto_closure.py"
          "${LEGATE_API_INCLUDES}" ${LEGATE_API_ROOTS}
  OUTPUT_VARIABLE _closure RESULT_VARIABLE _rc ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "resolving proto imports failed: ${_err}")
endif()

set(LEGATE_API_GEN "${CMAKE_BINARY_DIR}/gen")
set(_srcs "")
set(_protos "")
set(_include_args "")
foreach(_inc ${LEGATE_API_INCLUDES})
  list(APPEND _include_args "-I${_inc}")
endforeach()
foreach(_p ${_closure})
  string(REGEX REPLACE "\\.proto$" "" _base "${_p}")
  list(APPEND _srcs "${LEGATE_API_GEN}/${_base}.pb.cc")
  foreach(_inc ${LEGATE_API_INCLUDES})
    if(EXISTS "${_inc}/${_p}")
      list(APPEND _protos "${_inc}/${_p}")
      break()
    endif()
  endforeach()
endforeach()
string(REPLACE ".pb.cc" ".pb.h" _hdrs "${_srcs}")

add_custom_command(
  OUTPUT ${_srcs} ${_hdrs}
  COMMAND "${CMAKE_COMMAND}" -E make_directory "${LEGATE_API_GEN}"
  COMMAND protobuf::protoc --cpp_out=${LEGATE_API_GEN} ${_include_args} ${_closure}
  DEPENDS ${_protos}
  COMMENT "Generating C++ for the Envoy v3 API closure"
  VERBATIM)

add_library(legate_api STATIC ${_srcs})
target_include_directories(legate_api SYSTEM PUBLIC "${LEGATE_API_GEN}")
target_link_libraries(legate_api PUBLIC protobuf::libprotobuf)
# Generated code is not ours to lint.
target_compile_options(legate_api PRIVATE -w)
