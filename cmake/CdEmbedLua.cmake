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
