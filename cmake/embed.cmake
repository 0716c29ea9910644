# Turns a file into a C source holding its bytes (cmake -P; the build's only code
# generator, so that no xxd or other tool is needed):
#   cmake -DINPUT=web/status.html -DOUTPUT=status_html.c -DNAME=sk_status_html
#         -DHEADER=api/status_html.h -P cmake/embed.cmake
# defines `const unsigned char NAME[]` (the bytes and a NUL) and `const size_t NAME_len`.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR length "${hex_length} / 2")
# 16 bytes a line, each as 0xNN.
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line)
string(REGEX REPLACE "(${line})" "\\1\n    " bytes "${bytes}")
get_filename_component(input_name "${INPUT}" NAME)
file(WRITE "${OUTPUT}"
     "/* Generated from ${input_name} by cmake/embed.cmake: do not edit. */\n"
     "#include \"${HEADER}\"\n\n"
     "const unsigned char ${NAME}[] = {\n    ${bytes}0x00};\n"
     "const size_t ${NAME}_len = ${length};\n")
