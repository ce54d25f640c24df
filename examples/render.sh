#!/usr/bin/env bash
# Renders a talking head to an MP4: text (spoken by talkertts) or a WAV file,
# an avatar, and the whole chain whisperfeat ! musetalklipsync ! faceblend.
#
#   examples/render.sh [--text "Hello."] [--wav speech.wav] [--avatar DIR] [--out talking.mp4] [--no-download]
#
# Fetches the official weights (models/download.sh) unless they are there or
# --no-download is given. Where they cannot be had (no internet), it uses the
# small random-weight test models of ../shared/golden and says so: the chain
# runs for real, but the mouth is noise. Without --avatar it builds a
# default avatar from the astronaut photo of Debian's python3-skimage.
# TALKER_LOSSLESS=1 encodes lossless H.264 (tests compare pixels).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
text="Hello! I am a talking head, made of GStreamer elements."
wav="" avatar="" out="talking.mp4" download=1
while [ $# -gt 0 ]; do
  case "$1" in
    --text) text="$2"; shift 2 ;;
    --wav) wav="$2"; shift 2 ;;
    --avatar) avatar="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-download) download=0; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "render.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

m="$root/models"
have_weights() { [ -s "$m/musetalkV15/unet.pth" ] && [ -s "$m/sd-vae/config.json" ] && [ -s "$m/whisper/tiny.pt" ]; }
if ! have_weights && [ "$download" = 1 ]; then
  "$m/download.sh" || echo "render.sh: could not fetch the official weights (see above)."
fi
if [ -s "$m/musetalkV15/unet.pth" ] && [ -s "$m/sd-vae/config.json" ] && [ -s "$m/whisper/tiny.pt" ]; then
  unet="$m/musetalkV15/unet.pth" unet_config="$m/musetalkV15/musetalk.json" vae="$m/sd-vae" whisper="$m/whisper/tiny.pt"
  default_avatar="$root/avatars/default"
else
  g="${TALKER_GOLDEN_DIR:-$root/../shared/golden}"
  [ -s "$g/unet_small/unet.pth" ] || { echo "render.sh: no models: run models/download.sh" >&2; exit 1; }
  unet="$g/unet_small/unet.pth" unet_config="$g/unet_small/config.json" vae="$g/vae_small" whisper="$g/whisper_tiny/tiny.pt"
  # Latents belong to the VAE that made them: keep the test avatar apart.
  default_avatar="${TALKER_BUILD_DIR:-$root/build}/avatars/default-test-models"
  echo "NOTE: official weights not found (models/download.sh): rendering with small random-weight test"
  echo "      models. Every stage runs for real, but the mouth will be noise."
fi

build="${TALKER_BUILD_DIR:-$root/build}"
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
ninja -C "$build" >/dev/null

if [ -z "$avatar" ]; then
  avatar="$default_avatar"
  if [ ! -s "$avatar/latents.safetensors" ]; then
    photo=/usr/lib/python3/dist-packages/skimage/data/astronaut.png
    [ -s "$photo" ] || { echo "render.sh: no default avatar photo: apt-get install python3-skimage, or pass --avatar" >&2; exit 1; }
    "$build/tools/talker-avatar" build "$photo" "$avatar" --vae "$vae"
  fi
fi

export GST_PLUGIN_PATH="$build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "$wav" ]; then
  gst-launch-1.0 -q talkertts is-live=false text="$text" ! wavenc ! filesink location="$work/speech.wav"
  wav="$work/speech.wav"
fi
# Half a second of silence before and after: the avatar idles, speaks, idles.
ffmpeg -loglevel error -y -i "$wav" -af "adelay=500:all=1,apad=pad_dur=0.5" -ar 16000 -ac 1 "$work/padded.wav"

if [ "${TALKER_LOSSLESS:-0}" = 1 ]; then
  venc="x264enc pass=quant quantizer=0 speed-preset=ultrafast"
else
  venc="x264enc speed-preset=veryfast"
fi
# The audio branch's queue is unbounded: whisperfeat holds an utterance back
# until its end, and a full queue there would stall the tee feeding both.
gst-launch-1.0 -q -e filesrc location="$work/padded.wav" ! wavparse ! audioconvert ! audioresample \
  ! audio/x-raw,format=F32LE,rate=16000,channels=1 ! tee name=t \
  t. ! queue ! whisperfeat model="$whisper" mode=utterance gap-threshold-db=-50 \
     ! musetalklipsync avatar="$avatar" unet="$unet" unet-config="$unet_config" vae="$vae" batch-size=4 \
     ! faceblend avatar="$avatar" transition-ms=80 ! videoconvert ! $venc ! h264parse ! queue ! mp4mux name=mux \
     ! filesink location="$out" \
  t. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! audioconvert ! audioresample \
     ! audio/x-raw,rate=48000 ! avenc_aac ! aacparse ! mux.
echo "wrote $out"
