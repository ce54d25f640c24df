#!/usr/bin/env bash
# The whole chain to an MP4, checked from the outside: examples/render.sh
# with the random-weight test models, then ffprobe and the decoded pixels.
# Exit 77 (skipped) when the golden models or the tools are missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${TALKER_BUILD_DIR:?}"
golden="${TALKER_GOLDEN_DIR:-$root/../shared/golden}"
[ -s "$golden/index.json" ] || { echo "SKIP: no golden models at $golden"; exit 77; }
for tool in espeak-ng ffmpeg ffprobe /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done

out="$build/tests/render"
rm -rf "$out" && mkdir -p "$out/frames"
TALKER_LOSSLESS=1 TALKER_GOLDEN_DIR="$golden" "$root/examples/render.sh" \
  --text "Hello there. This is a test." --out "$out/talking.mp4" --no-download
ffmpeg -loglevel error -i "$out/talking.mp4" -pix_fmt rgb24 "$out/frames/%05d.png"

/usr/bin/python3 - "$out" "$build/avatars/default-test-models" <<'PY'
import glob, json, subprocess, sys
import numpy as np
from PIL import Image

out, avatar = sys.argv[1], sys.argv[2]
probe = json.loads(subprocess.check_output(
    ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration,nb_frames,avg_frame_rate",
     "-of", "json", out + "/talking.mp4"]))
streams = {s["codec_type"]: s for s in probe["streams"]}
failures = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok: failures.append(what)

check("video" in streams and "audio" in streams, "both streams present")
v, a = float(streams["video"]["duration"]), float(streams["audio"]["duration"])
n = int(streams["video"]["nb_frames"])
check(abs(v - a) <= 0.04, f"durations equal within one frame (video {v:.3f} s, audio {a:.3f} s)")
check(abs(n - a * 25) <= 1, f"video frames = audio duration x 25 ({n} vs {a * 25:.1f})")

boxes = json.load(open(avatar + "/boxes.json"))
x1, y1, x2, y2 = boxes["faces"][0]
cx1, cy1, cx2, cy2 = boxes["crops"][0]
frames = [np.asarray(Image.open(f)).astype(int) for f in sorted(glob.glob(out + "/frames/*.png"))]
check(len(frames) == n, f"decoded {len(frames)} frames")
avatar_rgb = np.asarray(Image.open(avatar + "/frames/000000.png").convert("RGB")).astype(int)
# The first frame is idle (silence): the avatar frame after the video's own
# RGB->YUV->RGB round trip, which costs a few levels.
base = frames[0]
conv = int(np.abs(base - avatar_rgb).max())
check(conv <= 4, f"an idle frame is the avatar frame (max diff {conv}, colour conversion)")
outside = np.ones(base.shape[:2], bool)
outside[max(cy1, 0):cy2, max(cx1, 0):cx2] = False
changed_outside = max(int(np.abs(f - base)[outside].max()) for f in frames)
check(changed_outside == 0, f"pixels outside the crop box never change (max diff {changed_outside})")
face_diff = [float(np.abs(f - base)[y1:y2, x1:x2].mean()) for f in frames]
speaking = [i for i, d in enumerate(face_diff) if d > 5]
print("face-box mean diff per frame:", " ".join(f"{d:.0f}" for d in face_diff))
check(len(speaking) >= 20, f"the mouth moves while speaking ({len(speaking)} frames)")
# 0.5 s of silence before and after the speech: 12 frames each; allow the fade.
check(all(d == 0 for d in face_diff[:10]), "the face is the avatar's before the speech")
check(all(d == 0 for d in face_diff[-10:]), "the face is the avatar's after the speech")
sys.exit(1 if failures else 0)
PY
