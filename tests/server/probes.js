// SPDX-License-Identifier: LGPL-2.1-or-later
// Measurements taken inside the browser page.
'use strict';

// Times (page clock) at which the receiver hands out each video frame's
// mouth region and each audio onset (loud after 300 ms of quiet), read from
// clones of the received tracks with MediaStreamTrackProcessor, so both are
// measured at the same point: out of the jitter buffers and decoders, after
// the browser's own audio/video alignment.
function installAvProbe(page) {
  return page.evaluate(() => {
    const stream = document.querySelector('video').srcObject;
    window.avVideo = [];
    window.avOnsets = [];
    const [videoTrack] = stream.getVideoTracks(), [audioTrack] = stream.getAudioTracks();
    const canvas = new OffscreenCanvas(36, 18);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const vr = new MediaStreamTrackProcessor({ track: videoTrack.clone() }).readable.getReader();
    (async () => { for (;;) {
      const { value: frame, done } = await vr.read(); if (done) return;
      const t = performance.now();
      const sx = frame.displayWidth / 320, sy = frame.displayHeight / 240;
      ctx.drawImage(frame, 70 * sx, 110 * sy, 180 * sx, 90 * sy, 0, 0, 36, 18);
      const px = ctx.getImageData(0, 0, 36, 18).data;
      const grey = new Float32Array(36 * 18);
      for (let i = 0; i < grey.length; i++) grey[i] = (px[4 * i] + px[4 * i + 1] + px[4 * i + 2]) / 3;
      window.avVideo.push({ t, grey });
      frame.close();
    } })();
    const ar = new MediaStreamTrackProcessor({ track: audioTrack.clone() }).readable.getReader();
    let quiet = 1e9;
    (async () => { for (;;) {
      const { value: data, done } = await ar.read(); if (done) return;
      const t = performance.now();
      const n = data.numberOfFrames, rate = data.sampleRate;
      const buf = new Float32Array(n);
      data.copyTo(buf, { planeIndex: 0, format: 'f32-planar' });
      for (let i = 0; i < n; i++) {
        if (Math.abs(buf[i]) > 0.05) {
          if (quiet > rate * 0.3) window.avOnsets.push(t - (n - i) * 1000 / rate);
          window.avLastLoud = t - (n - i) * 1000 / rate;
          quiet = 0;
        } else quiet++;
      }
      data.close();
    } })();
  });
}

// The first speech onset after `after`, and the first frame after it whose
// mouth differs from every idle frame of [idleStart, idleEnd].
function avOffset(page, idleStart, idleEnd, after) {
  return page.evaluate(([a, b, after]) => {
    const idle = window.avVideo.filter((s) => s.t >= a && s.t <= b);
    const mad = (x, y) => { let d = 0; for (let i = 0; i < x.length; i++) d += Math.abs(x[i] - y[i]); return d / x.length; };
    const onset = window.avOnsets.find((t) => t > after);
    const frame = window.avVideo.find((s) => s.t > after && Math.min(...idle.map((r) => mad(r.grey, s.grey))) > 4);
    return { onset, mouth: frame ? frame.t : undefined, idleFrames: idle.length };
  }, [idleStart, idleEnd, after]);
}

// For each sample after `idleEnd` (page time), its distance to the nearest
// idle sample taken in [idleStart, idleEnd]: about zero for an idle frame
// (the idle loop repeats), large where the mouth was generated.
function distances(page, idleStart, idleEnd) {
  return page.evaluate(([a, b]) => {
    const idle = window.avVideo.filter((s) => s.t >= a && s.t <= b);
    const mad = (x, y) => { let d = 0; for (let i = 0; i < x.length; i++) d += Math.abs(x[i] - y[i]); return d / x.length; };
    return window.avVideo.filter((s) => s.t > b).map((s) => ({
      t: s.t, d: Math.min(...idle.map((r) => mad(r.grey, s.grey))),
    }));
  }, [idleStart, idleEnd]);
}

function inbound(page, pcExpr = 'talker.pc') {
  return page.evaluate(async (expr) => {
    const pc = eval(expr);
    const out = {};
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') out[s.kind] = {
        framesDecoded: s.framesDecoded, framesReceived: s.framesReceived, packetsReceived: s.packetsReceived,
        totalSamplesReceived: s.totalSamplesReceived, totalAudioEnergy: s.totalAudioEnergy,
        frameWidth: s.frameWidth, frameHeight: s.frameHeight, codecId: s.codecId,
      };
    });
    return out;
  }, pcExpr);
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { installAvProbe, avOffset, distances, inbound, median, sleep };
