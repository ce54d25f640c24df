#!/bin/sh
# Embeds the page in the binary: talker-server serves it without reading any
# file at run time.  embed.sh INPUT.html OUTPUT.h
set -eu
{
  echo '// Generated from web/index.html by embed.sh: edit that file.'
  echo '#pragma once'
  printf 'static const char kIndexHtml[] = R"TALKERPAGE('
  cat "$1"
  echo ')TALKERPAGE";'
} > "$2"
