# Build step: turns the BIP-39 English word list shipped by Debian's
# python3-mnemonic into a C++ table, so nobody retypes 2048 words.
# Inputs: -DWORDLIST=<english.txt> -DOUT=<header to write>.
file(STRINGS "${WORDLIST}" _words)
list(LENGTH _words _count)
if(NOT _count EQUAL 2048)
  message(FATAL_ERROR "${WORDLIST}: expected 2048 BIP-39 words, found ${_count}")
endif()
set(_prev "")
set(_body "")
foreach(_w IN LISTS _words)
  if(NOT _w MATCHES "^[a-z]+$")
    message(FATAL_ERROR "${WORDLIST}: unexpected word '${_w}' (only a-z expected)")
  endif()
  if(NOT _prev STREQUAL "" AND NOT _prev STRLESS _w)
    message(FATAL_ERROR "${WORDLIST}: words not sorted at '${_w}' (lookup uses binary search)")
  endif()
  set(_prev "${_w}")
  string(APPEND _body "    \"${_w}\",\n")
endforeach()
file(WRITE "${OUT}.tmp"
  "// Generated from ${WORDLIST} by src/crypto/gen_bip39_wordlist.cmake. Do not edit.\n"
  "#pragma once\n\n#include <array>\n#include <string_view>\n\n"
  "namespace gpunet::crypto::bip39 {\n\n"
  "/// The BIP-39 English word list, sorted, 2048 entries.\n"
  "inline constexpr std::array<std::string_view, 2048> kEnglishWords = {\n"
  "${_body}};\n\n}  // namespace gpunet::crypto::bip39\n")
file(RENAME "${OUT}.tmp" "${OUT}")
