# CD_SANITIZE=ON: ASan + UBSan for every target, abort on the first UB report.
if(CD_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
