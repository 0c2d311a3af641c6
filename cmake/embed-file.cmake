# Writes a C++ source holding a file's bytes, so that the binary carries its web assets.
# usage: cmake -DIN=file -DOUT=file.cpp -DNAME=symbol -P embed-file.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
    "// Generated from ${IN} by cmake/embed-file.cmake. Do not edit.\n"
    "#include <cstddef>\n"
    "namespace muse {\n"
    "extern const unsigned char ${NAME}[] = { ${bytes} 0x00 };\n"
    "extern const size_t ${NAME}_len = ${len};\n"
    "}  // namespace muse\n")
file(RENAME "${OUT}.tmp" "${OUT}")
