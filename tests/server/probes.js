// SPDX-License-Identifier: LGPL-2.1-or-later
// Measurements taken inside the browser page.
'use strict';

// Samples the lower face region of the decoded video (the micro avatar is
// 320×240 with its face crop at x 70-250, y 20-200; MuseTalk regenerates the
// lower half) on every decoded frame, into window.frameSamples.
function installSampler(page) {
  return page.evaluate(() => {
    const video = document.querySelector('video');
    const canvas = new OffscreenCanvas(36, 18);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    window.frameSamples = [];
    const onFrame = (now, meta) => {
      if (video.videoWidth) {
        const sx = video.videoWidth / 320, sy = video.videoHeight / 240;
        ctx.drawImage(video, 70 * sx, 110 * sy, 180 * sx, 90 * sy, 0, 0, 36, 18);
        const px = ctx.getImageData(0, 0, 36, 18).data;
        const grey = new Float32Array(36 * 18);
        for (let i = 0; i < grey.length; i++) grey[i] = (px[4 * i] + px[4 * i + 1] + px[4 * i + 2]) / 3;
        window.frameSamples.push({ t: performance.now(), grey });
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
}

// For each sample after `idleEnd` (page time), its distance to the nearest
// idle sample taken in [idleStart, idleEnd]: about zero for an idle frame
// (the idle loop repeats), large where the mouth was generated.
function distances(page, idleStart, idleEnd) {
  return page.evaluate(([a, b]) => {
    const idle = window.frameSamples.filter((s) => s.t >= a && s.t <= b);
    const mad = (x, y) => { let d = 0; for (let i = 0; i < x.length; i++) d += Math.abs(x[i] - y[i]); return d / x.length; };
    return window.frameSamples.filter((s) => s.t > b).map((s) => ({
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

module.exports = { installSampler, distances, inbound, median, sleep };
