# Embed every server/store/lua/*.lua into a generated C table (cd_store_lua_sources).
function(cd_embed_lua tgt dir)
  file(GLOB luas CONFIGURE_DEPENDS ${dir}/*.lua)
  list(SORT luas)
  set(out ${CMAKE_BINARY_DIR}/generated/lua_sources.c)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DDIR=${dir} -P ${CMAKE_SOURCE_DIR}/cmake/embed_lua.cmake
    DEPENDS ${luas} ${CMAKE_SOURCE_DIR}/cmake/embed_lua.cmake
    COMMENT "Embedding Lua scripts")
  target_sources(${tgt} PRIVATE ${out})
endfunction()

# Embed one file as a C array name[] and name_len (cmake/embed_file.cmake).
function(cd_embed_file tgt file name)
  set(out ${CMAKE_BINARY_DIR}/generated/${name}.c)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DIN=${file} -DNAME=${name} -P ${CMAKE_SOURCE_DIR}/cmake/embed_file.cmake
    DEPENDS ${file} ${CMAKE_SOURCE_DIR}/cmake/embed_file.cmake
    COMMENT "Embedding ${file}")
  target_sources(${tgt} PRIVATE ${out})
endfunction()
