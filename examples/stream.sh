#!/usr/bin/env bash
# One render, many outputs: the talking head tee'd to a WHIP server (SRS), an
# RTMP server (nginx-rtmp, Bilibili, Douyin...), a recording that survives a
# crash (fragmented MP4) and a local preview. Each branch has its own leaky
# queue, and the output elements reconnect by themselves, so one output
# failing or reconnecting never stalls the others. H.264 is encoded once and
# shared (a reconnecting output's key-frame request reaches that encoder);
# each output encodes its own audio (Opus for WHIP, AAC for RTMP).
#
#   WHIP_URL="http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=livestream" \
#   RTMP_URL="rtmp://127.0.0.1/live/livestream" \
#   examples/stream.sh "Hello from the talking head."
#
# RTMP_URL holds the stream key: keep it in the environment, not in scripts;
# the elements redact it in logs and messages. Leave either URL unset to skip
# that output. Uses the official models when models/ has them, else the
# micro models from the build (real time on a CPU; the mouth is noise).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
text="${1:-Hello! I am a talking head, live on every platform at once.}"
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
export GST_PLUGIN_PATH="$root/build/gst"
export OPENBLAS_NUM_THREADS=1  # docs/architecture.md: OpenBLAS threads starve the streaming threads

if [ -s models/musetalkV15/unet.pth ] && [ -d avatars/default ]; then
  HEAD="talkinghead avatar=avatars/default whisper-model=models/whisper/tiny.pt unet=models/musetalkV15/unet.pth vae=models/sd-vae"
else
  m=build/tools/micro
  HEAD="talkinghead avatar=$m/avatar whisper-model=$m/whisper.safetensors unet=$m/unet.safetensors unet-config=$m/musetalk.json vae=$m/vae encoder-latency-ms=1200"
  echo "NOTE: official models or avatars/default not found: using the micro models (mouth is noise)."
fi

# The latency of the talking head must fit in the queues between the tee and it.
HOLD="queue max-size-time=10000000000 max-size-buffers=0 max-size-bytes=0"
# Per output: drop old data rather than block the tee when an output stalls.
LEAKY="queue leaky=downstream max-size-time=2000000000 max-size-buffers=0 max-size-bytes=0"
# The local preview; VIDEO_PREVIEW=fakesink AUDIO_PREVIEW=fakesink on a machine without a display.
VIDEO_PREVIEW="${VIDEO_PREVIEW:-autovideosink}"
AUDIO_PREVIEW="${AUDIO_PREVIEW:-autoaudiosink}"
REC="recording-$(date +%Y%m%d-%H%M%S).mp4"

outputs=""
# One line each: the command below goes through eval, where a newline ends it.
[ -n "${WHIP_URL:-}" ] && outputs+=" talkerwhipsink name=whip location=\"$WHIP_URL\" ${WHIP_TOKEN:+auth-token=$WHIP_TOKEN} v. ! $LEAKY ! whip.video a. ! $LEAKY ! whip.audio"
[ -n "${RTMP_URL:-}" ] && outputs+=" talkerrtmpsink name=rtmp location=\"$RTMP_URL\" v. ! $LEAKY ! rtmp.video a. ! $LEAKY ! rtmp.audio"

echo "recording to $REC"
eval ${LAUNCH:-gst-launch-1.0} -e -m \
  talkertts text=\""$text"\" ! tee name=t \
  t. ! $HOLD ! $HEAD ! tee name=raw \
     raw. ! $LEAKY ! videoconvert ! $VIDEO_PREVIEW \
     raw. ! $HOLD ! videoconvert ! x264enc tune=zerolatency speed-preset=superfast key-int-max=50 \
        ! video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 ! tee name=v \
  t. ! $HOLD ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! tee name=a \
     a. ! $LEAKY ! $AUDIO_PREVIEW \
  mp4mux name=rec fragment-duration=1000 ! filesink location="$REC" \
     v. ! $LEAKY ! rec.video_0  a. ! $LEAKY ! voaacenc ! aacparse ! rec.audio_0 \
  "$outputs"
