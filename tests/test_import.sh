#!/usr/bin/env bash
# talker-avatar import against files written by the reference tools' own
# writers: torch.save for latents.pt (Debian's python3-torch), pickle of numpy
# scalars for coords.pkl, PNGs via PIL; the result is read back in Python too.
set -euo pipefail
build="${TALKER_BUILD_DIR:?}"
/usr/bin/python3 -c "import torch, numpy, PIL" 2>/dev/null || { echo "SKIP: python3-torch/numpy/PIL missing"; exit 77; }
# --help answers on stdout and succeeds; no arguments is a usage error.
help=$("$build/tools/talker-avatar" --help)
grep -q "usage: talker-avatar build" <<<"$help"
if "$build/tools/talker-avatar" 2>/dev/null; then echo "no arguments should fail"; exit 1; fi
work="$build/tests/import"
rm -rf "$work" && mkdir -p "$work"

/usr/bin/python3 - "$work/musetalk_avatar" <<'PY'
import os, pickle, sys
import numpy as np, torch
from PIL import Image
root = sys.argv[1]
for sub in ("full_imgs", "mask"): os.makedirs(os.path.join(root, sub))
rng = np.random.default_rng(5)
coords, mask_coords, latents = [], [], []
for i in range(4):
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(f"{root}/full_imgs/{i:08d}.png")
    # As MuseTalk leaves them: numpy int32 from the landmarks, Python ints elsewhere.
    x1, y1, x2, y2 = np.int32(40 + i), 30, np.int32(100 + i), np.int64(96)
    coords.append([x1, y1, x2, y2])
    s = int(max(x2 - x1, y2 - y1) // 2 * 1.5)
    xc, yc = (x1 + x2) // 2, (y1 + y2) // 2
    mask_coords.append([xc - s, yc - s, xc + s, yc + s])
    Image.fromarray(rng.integers(0, 256, (2 * s, 2 * s), dtype=np.uint8)).save(f"{root}/mask/{i:08d}.png")
    latents.append(torch.randn(1, 8, 32, 32, generator=torch.Generator().manual_seed(i)))
pickle.dump(coords, open(f"{root}/coords.pkl", "wb"))
pickle.dump(mask_coords, open(f"{root}/mask_coords.pkl", "wb"))
torch.save(latents, f"{root}/latents.pt")
PY

"$build/tools/talker-avatar" import "$work/musetalk_avatar" "$work/ours"

/usr/bin/python3 - "$work/musetalk_avatar" "$work/ours" <<'PY'
import json, pickle, struct, sys
import numpy as np, torch
from PIL import Image
src, ours = sys.argv[1], sys.argv[2]
meta = json.load(open(f"{ours}/avatar.json"))
assert meta["frame_count"] == 4 and meta["width"] == 160 and meta["height"] == 120, meta
boxes = json.load(open(f"{ours}/boxes.json"))
assert boxes["faces"] == [[int(v) for v in b] for b in pickle.load(open(f"{src}/coords.pkl", "rb"))], boxes["faces"]
assert boxes["crops"] == [[int(v) for v in b] for b in pickle.load(open(f"{src}/mask_coords.pkl", "rb"))]
for i in range(4):
    for a, b in ((f"{src}/full_imgs/{i:08d}.png", f"{ours}/frames/{i:06d}.png"), (f"{src}/mask/{i:08d}.png", f"{ours}/masks/{i:06d}.png")):
        assert (np.asarray(Image.open(a)) == np.asarray(Image.open(b))).all(), (a, b)
# safetensors, read by hand: 8-byte header length, JSON header, raw data.
raw = open(f"{ours}/latents.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])["latents"]
assert h["dtype"] == "F32" and h["shape"] == [4, 8, 32, 32], h
b, e = h["data_offsets"]
got = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(4, 8, 32, 32)
want = torch.cat(torch.load(f"{src}/latents.pt")).numpy()
assert np.array_equal(got, want)
print("import: frames, masks, boxes and latents match the MuseTalk avatar")
PY

# A damaged avatar is refused with a message naming the file.
rm "$work/musetalk_avatar/mask/00000003.png"
if "$build/tools/talker-avatar" import "$work/musetalk_avatar" "$work/bad" 2>"$work/err.txt"; then
  echo "FAIL: a folder with a missing mask was imported"; exit 1
fi
grep -q "3 masks for 4 frames" "$work/err.txt" || { echo "FAIL: unexpected message:"; cat "$work/err.txt"; exit 1; }
echo "import: a missing mask is refused: $(cat "$work/err.txt")"
