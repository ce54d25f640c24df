#!/usr/bin/env bash
# Speaks a sentence with talkertts and turns it into whisper features, one
# buffer per 25 fps video frame: the audio half of the talking head.
#   examples/features.sh ["Some text"]
# Uses models/whisper/tiny.pt (models/download.sh) when present, else the
# random-weight whisper-tiny of ../shared/golden (the features are then noise,
# but every stage runs for real).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
text="${1:-Hello! I am a talking head, built from GStreamer elements.}"

model="models/whisper/tiny.pt"
if [ ! -s "$model" ]; then
  model="${TALKER_GOLDEN_DIR:-$root/../shared/golden}/whisper_tiny/tiny.pt"
  [ -s "$model" ] || { echo "no whisper model: run models/download.sh" >&2; exit 1; }
  echo "NOTE: real weights not found (models/download.sh); using random test weights: features are noise."
fi
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null

export GST_PLUGIN_PATH="$root/build/gst"
gst-launch-1.0 talkertts is-live=false text="$text" \
  ! whisperfeat model="$model" mode=utterance \
  ! fakesink silent=false sync=false -v 2>&1 |
  grep -o 'chain.*pts: [0-9:.]*, duration: [0-9:.]*' |
  awk '{n++; if (n <= 2) print; last=$0} END {print "..."; print last; print n " feature frames (one per 40 ms of speech)"}'
