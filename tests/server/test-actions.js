// SPDX-License-Identifier: LGPL-2.1-or-later
// Action clips (LiveTalking's 动作编排): an avatar with actions/wave/ (magenta
// frames and a 1 kHz tone), /offer's custom_config mapping audiotype 2 to it,
// /set_audiotype playing it: chromium sees the magenta frames and hears the
// tone together, then the avatar again. Refusals of unknown clips and paths.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { serverAndPage, makeOffers, until, buildRoot } = require('./harness');
const { installAvProbe, sleep } = require('./probes');

// The micro avatar plus actions/wave: 25 magenta frames (1 s) and a tone.
function actorAvatar(avatars) {
  const dir = path.join(avatars, 'actor');
  fs.mkdirSync(path.join(dir, 'actions', 'wave', 'frames'), { recursive: true });
  for (const f of ['avatar.json', 'boxes.json', 'frames', 'masks', 'latents.safetensors'])
    fs.symlinkSync(path.join(buildRoot, 'tools/micro/avatar', f), path.join(dir, f));
  const wave = path.join(dir, 'actions', 'wave');
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'color=c=0xff00ff:s=320x240:r=25', '-frames:v', '25',
    '-start_number', '0', path.join(wave, 'frames', '%06d.png')]);
  execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=1000:duration=1:sample_rate=16000',
    '-af', 'volume=4', path.join(wave, 'audio.wav')]);
}

// Records when each decoded frame is mostly magenta (page time).
function installColorProbe(page) {
  return page.evaluate(() => {
    window.colors = [];
    const [track] = document.querySelector('video').srcObject.getVideoTracks();
    const canvas = new OffscreenCanvas(16, 12);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const reader = new MediaStreamTrackProcessor({ track: track.clone() }).readable.getReader();
    (async () => { for (;;) {
      const { value: frame, done } = await reader.read(); if (done) return;
      const t = performance.now();
      ctx.drawImage(frame, 0, 0, 16, 12);
      frame.close();
      const d = ctx.getImageData(0, 0, 16, 12).data;
      let r = 0, g = 0, b = 0;
      for (let i = 0; i < d.length; i += 4) { r += d[i]; g += d[i + 1]; b += d[i + 2]; }
      const n = d.length / 4;
      window.colors.push({ t, magenta: r / n > 180 && g / n < 80 && b / n > 180 });
    } })();
  });
}

test('action clips: /set_audiotype plays a clip, its frames and sound together, then the avatar', async (t) => {
  const { server, page } = await serverAndPage(t);
  actorAvatar(server.avatars);
  const offer = async (extra) => {
    const [sdp] = await makeOffers(page, 1);
    return (await server.post('/offer', { sdp, type: 'offer', avatar: 'actor', ...extra })).json;
  };
  // custom_config names clips of the avatar, by the last part of imgpath; nothing else.
  assert.match((await offer({ custom_config: [{ audiotype: 2, imgpath: 'data/customvideo/nope' }] })).msg,
    /^custom_config: the avatar 'actor' has no action clip 'nope'/);
  assert.match((await offer({ custom_config: [{ audiotype: 2, imgpath: '/etc/..' }] })).msg, /^custom_config: .*no action clip/);
  assert.match((await offer({ custom_config: { audiotype: 2 } })).msg, /^custom_config: must be a list/);

  await page.evaluate(() => { window.pcs = []; });
  const a = await offer({ custom_config: [{ audiotype: 2, imgpath: 'data/customvideo/wave', audiopath: '/etc/passwd' }] });
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  await page.evaluate(async (a) => {
    const pc = window.pcs[window.pcs.length - 1];
    await pc.setRemoteDescription(a);
    document.querySelector('video').srcObject = new MediaStream(pc.getReceivers().map((r) => r.track));
    window.pc = pc;
  }, a);
  assert.ok(await until(() => page.evaluate(() => window.pc.connectionState === 'connected'), 30000));
  await installAvProbe(page);
  await installColorProbe(page);
  await sleep(2500);

  const set = (audiotype) => server.post('/set_audiotype', { sessionid: String(a.sessionid), audiotype });
  assert.match((await set(3)).json.msg, /^audiotype: no action clip for '3'/);
  assert.match((await set('../wave')).json.msg, /^audiotype: no action clip/);
  assert.match((await set(null)).json.msg, /^audiotype: missing/);

  const sent = await page.evaluate(() => performance.now());
  const r = (await set(2)).json;
  assert.strictEqual(r.code, 0, JSON.stringify(r));
  assert.deepStrictEqual(r.data, { clip: 'wave', seconds: 1 });
  // The clip reaches chromium one pipeline latency (~2 s) after the request and lasts 1 s; then
  // more than a second of avatar frames must follow, whatever the latency of the day.
  await sleep(6500);
  const { colors, onsets } = await page.evaluate(() => ({ colors: window.colors, onsets: window.avOnsets }));
  const magenta = colors.filter((c) => c.t > sent && c.magenta);
  const onset = onsets.find((x) => x > sent);
  assert.ok(magenta.length > 0, 'the clip reached the browser');
  assert.ok(onset, 'its sound reached the browser');
  const first = magenta[0].t, last = magenta[magenta.length - 1].t;
  console.log(`# action clip at chromium: picture ${(first - sent).toFixed(0)} ms after /set_audiotype, ` +
    `sound ${(onset - sent).toFixed(0)} ms; picture - sound ${(first - onset).toFixed(0)} ms; ` +
    `${magenta.length} clip frames over ${(last - first).toFixed(0)} ms`);
  // Together within the browser's own jitter (lips vs sound measured -25..-82 ms there).
  assert.ok(Math.abs(first - onset) <= 150, `picture ${first - onset} ms from the sound`);
  assert.ok(last - first > 800 && last - first < 1300, `the clip lasted ${last - first} ms`);
  // Then the avatar, not the clip.
  const after = colors.filter((c) => c.t > last + 500);
  assert.ok(after.length > 25 && after.every((c) => !c.magenta), 'back to the avatar');

  // A clip by its own name, too.
  const byName = (await set('wave')).json;
  assert.strictEqual(byName.code, 0, JSON.stringify(byName));
});
