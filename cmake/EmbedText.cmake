# Run with cmake -P at build time: writes OUTPUT from TEMPLATE with @CONTENT@ replaced by the
# text of INPUT, for templates that put @CONTENT@ inside R"tokenway_embed(...)tokenway_embed".
# configure_file rewrites OUTPUT only when the text changed, so an untouched input recompiles
# nothing.
foreach(var INPUT TEMPLATE OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "EmbedText.cmake: ${var} is not set")
  endif()
endforeach()
file(READ "${INPUT}" CONTENT)
string(FIND "${CONTENT}" ")tokenway_embed\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )tokenway_embed\"")
endif()
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
