# SPDX-License-Identifier: LGPL-2.1-or-later
"""Our C++ models' time over diffusers' on the same torch and CPU, in one run.

    /usr/bin/python3 bench/diffusers_ratio.py [--bench build/bench/musetalk_bench] [--batches 1,4]
                                     [--rounds 3] [--decoder sd-vae]

Full-size MuseTalk v1.5 UNet and sd-vae-ft-mse decoder, random weights,
float32, as many threads as the C++ side uses (every CPU this process may run
on, see docs/performance.md). Python is diffusers itself when it is installed,
otherwise bench/diffusers_reference.py (diffusers' operations transcribed,
checked here against ../shared/golden first). Each measurement warms up at its
batch size, then takes the mean of two runs; C++ and Python measurements
alternate, `--rounds` times, and each side's fastest counts, so that a noisy
spell on a shared machine does not land on one side only. Prints ms per frame and
the ratio C++ / Python for the UNet and the decoder at each batch size (<= 1.0:
ours is not slower).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def python_models(configs):
    with open(os.path.join(configs, "musetalk-v15-unet.json")) as f:
        unet_config = json.load(f)
    with open(os.path.join(configs, "sd-vae-ft-mse.json")) as f:
        vae_config = json.load(f)
    try:
        import diffusers  # noqa: F401

        unet = diffusers.UNet2DConditionModel(**{k: v for k, v in unet_config.items()
                                                 if not k.startswith("_")})
        vae = diffusers.AutoencoderKL(**{k: v for k, v in vae_config.items()
                                         if not k.startswith("_")})

        def decode(z):
            return vae.decode(z).sample

        return "diffusers " + diffusers.__version__, unet.eval(), decode
    except ImportError:
        sys.path.insert(0, HERE)
        import diffusers_reference as ref

        golden = os.path.join(ROOT, "..", "shared", "golden")
        u, v = ref.check_against_golden(golden)
        if u > 1e-4 or v > 1e-3:
            sys.exit(f"diffusers_reference.py does not match diffusers' golden outputs "
                     f"(UNet {u:.3g}, decoder {v:.3g})")
        print(f"diffusers is not installed: bench/diffusers_reference.py, which matches diffusers' "
              f"golden outputs (UNet max |diff| {u:.2g}, decoder {v:.2g})")
        unet = ref.UNet2DConditionModel(unet_config).eval()
        vae = ref.VAEDecoder(vae_config).eval()
        return "diffusers' operations (transcribed)", unet, vae


def time_python(unet, decode, batch, threads, reps=2):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    latents = torch.randn(batch, 8, 32, 32)
    features = torch.randn(batch, 50, 384)
    t = torch.zeros(1, dtype=torch.long)
    with torch.inference_mode():
        decode(unet(latents, t, features))  # warm-up at this batch (C++: --warm-each 1)
        unet_s = decode_s = 0
        for _ in range(reps):  # the mean of `reps` runs, as musetalk_bench --reps
            t0 = time.perf_counter()
            pred = unet(latents, t, features)
            t1 = time.perf_counter()
            image = decode(pred * (1 / 0.18215))
            image = (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
            (image * 255).round().to(torch.uint8).flip(3).contiguous()
            t2 = time.perf_counter()
            unet_s, decode_s = unet_s + t1 - t0, decode_s + t2 - t1
    return unet_s / reps / batch * 1e3, decode_s / reps / batch * 1e3


def time_cpp(bench, batch, threads, decoder):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([bench, "--batches", str(batch), "--decoder", decoder, "--warm-each", "1",
                          "--reps", "2"],
                         capture_output=True, text=True, env=env, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", line)
        if m and int(m.group(1)) == batch:
            return float(m.group(2)), float(m.group(3))
    sys.exit("no figures from " + bench + ":\n" + out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "musetalk_bench"))
    p.add_argument("--batches", default="1,4")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    which, unet, decode = python_models(os.path.join(ROOT, "models", "configs"))
    print(f"torch {torch.__version__}, {args.threads} threads, float32, random weights; "
          f"Python side: {which}; fastest of {args.rounds} alternating rounds")
    print(f"{'batch':>5} {'model':>8} {'C++ ms/fr':>10} {'Py ms/fr':>10} {'C++/Py':>7}")
    for batch in [int(b) for b in args.batches.split(",")]:
        best = {"cpp": [float("inf")] * 2, "py": [float("inf")] * 2}
        for _ in range(args.rounds):
            for side in ("cpp", "py"):
                got = (time_cpp(args.bench, batch, args.threads, "sd-vae") if side == "cpp"
                       else time_python(unet, decode, batch, args.threads))
                best[side] = [min(a, b) for a, b in zip(best[side], got)]
        for i, name in enumerate(("UNet", "decoder")):
            c, py = best["cpp"][i], best["py"][i]
            print(f"{batch:>5} {name:>8} {c:>10.1f} {py:>10.1f} {c / py:>7.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
