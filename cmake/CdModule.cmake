# cd_module(name DEPS ...): server/<name>/**/*.c -> static library cd_<name> (a module may
# keep parts in subfolders, as http/api/).
function(cd_module name)
  cmake_parse_arguments(M "" "" "DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/server/${name}/*.c)
  add_library(cd_${name} STATIC ${srcs} ${CMAKE_SOURCE_DIR}/cmake/empty.c)
  target_include_directories(cd_${name} PRIVATE ${CMAKE_SOURCE_DIR}/server/${name})
  target_link_libraries(cd_${name} PUBLIC ${M_DEPS})
  cd_target_warnings(cd_${name})
endfunction()
