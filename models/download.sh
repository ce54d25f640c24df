#!/usr/bin/env bash
# Fetches the official weights gst-talker's loaders read, into models/:
#
#   models/musetalkV15/unet.pth, musetalk.json          MuseTalk v1.5 (default)
#   models/musetalk/pytorch_model.bin, musetalk.json    MuseTalk v1.0 (with --v1)
#   models/sd-vae/config.json, diffusion_pytorch_model.bin   stabilityai/sd-vae-ft-mse
#   models/whisper/tiny.pt                               openai whisper-tiny
#   models/whisper/config.json, pytorch_model.bin, preprocessor_config.json
#                                                        transformers openai/whisper-tiny
#   models/taesd/config.json, diffusion_pytorch_model.safetensors
#                                                        madebyollin/taesd (with --taesd:
#                                                        musetalklipsync decoder=taesd)
#
# Files already present are kept. HF_ENDPOINT selects a Hugging Face mirror
# (e.g. HF_ENDPOINT=https://hf-mirror.com). About 4.2 GB in all (v1.5).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dest="${TALKER_MODELS_DIR:-$here}"
hf="${HF_ENDPOINT:-https://huggingface.co}"
with_v1=0
with_taesd=0
for arg in "$@"; do
  case "$arg" in
    --v1) with_v1=1 ;;
    --taesd) with_taesd=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "download.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if command -v curl >/dev/null; then
  fetch() { curl -fL --retry 3 --retry-delay 2 -C - -o "$2" "$1"; }
elif command -v wget >/dev/null; then
  fetch() { wget -c -O "$2" "$1"; }
else
  echo "download.sh: needs curl or wget (apt-get install curl)" >&2
  exit 1
fi

# get URL FILE: downloads to FILE.part, then renames, so a broken download
# never leaves a truncated file under the real name.
get() {
  local url="$1" file="$2"
  if [ -s "$file" ]; then
    echo "have   $file"
    return
  fi
  mkdir -p "$(dirname "$file")"
  echo "fetch  $file"
  fetch "$url" "$file.part"
  mv "$file.part" "$file"
}

hf_get() {  # REPO PATH-IN-REPO DEST-FILE
  get "$hf/$1/resolve/main/$2" "$3"
}

hf_get TMElyralab/MuseTalk musetalkV15/unet.pth      "$dest/musetalkV15/unet.pth"
hf_get TMElyralab/MuseTalk musetalkV15/musetalk.json "$dest/musetalkV15/musetalk.json"
if [ "$with_v1" = 1 ]; then
  hf_get TMElyralab/MuseTalk musetalk/pytorch_model.bin "$dest/musetalk/pytorch_model.bin"
  hf_get TMElyralab/MuseTalk musetalk/musetalk.json     "$dest/musetalk/musetalk.json"
fi
if [ "$with_taesd" = 1 ]; then
  hf_get madebyollin/taesd config.json                         "$dest/taesd/config.json"
  hf_get madebyollin/taesd diffusion_pytorch_model.safetensors "$dest/taesd/diffusion_pytorch_model.safetensors"
fi
hf_get stabilityai/sd-vae-ft-mse config.json                 "$dest/sd-vae/config.json"
hf_get stabilityai/sd-vae-ft-mse diffusion_pytorch_model.bin "$dest/sd-vae/diffusion_pytorch_model.bin"
hf_get openai/whisper-tiny config.json              "$dest/whisper/config.json"
hf_get openai/whisper-tiny pytorch_model.bin        "$dest/whisper/pytorch_model.bin"
hf_get openai/whisper-tiny preprocessor_config.json "$dest/whisper/preprocessor_config.json"

# openai's own checkpoint; the folder name in the URL is the file's SHA-256.
tiny_sha=65147644a518d12f04e32d6f3b26facc3f8dd46e5390956a9424a650c0ce22b9
get "https://openaipublic.azureedge.net/main/whisper/models/$tiny_sha/tiny.pt" "$dest/whisper/tiny.pt"
if command -v sha256sum >/dev/null; then
  echo "$tiny_sha  $dest/whisper/tiny.pt" | sha256sum -c --quiet - ||
    { echo "download.sh: tiny.pt checksum mismatch; delete it and run again" >&2; exit 1; }
fi
echo "models ready in $dest"
