# Warnings every target gets; CD_WERROR (on in CI) makes them errors.
set(CD_WARNING_FLAGS
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wpointer-arith -Wformat=2 -Wundef -Wvla -Wno-unused-parameter)
function(cd_target_warnings tgt)
  target_compile_options(${tgt} PRIVATE ${CD_WARNING_FLAGS})
  if(CD_WERROR)
    target_compile_options(${tgt} PRIVATE -Werror)
  endif()
endfunction()
