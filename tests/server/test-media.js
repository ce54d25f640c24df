// SPDX-License-Identifier: LGPL-2.1-or-later
// Uploaded audio (/humanaudio): a WAV and an MP3 of tone bursts at irregular
// times are heard in the browser with the same rhythm, and the lips move;
// uploads that are not audio, too long, too large or that would make the
// decoder fetch a URL are refused with a message.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { serverAndPage, until } = require('./harness');
const { installAvProbe, distances, inbound, median, sleep } = require('./probes');

// Bursts of a buzzy 180 Hz tone (harmonics, like a voice) at these times.
const bursts = [[0.2, 0.6], [1.0, 1.25], [2.3, 3.0]];

function wav(seconds, rate, channels, at = bursts) {
  const n = Math.round(seconds * rate);
  const data = Buffer.alloc(n * channels * 2);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const on = at.some(([a, b]) => t >= a && t < b);
    let v = 0;
    if (on) for (let h = 1; h <= 6; h++) v += Math.sin(2 * Math.PI * 180 * h * t) / h;
    const s = Math.round(Math.max(-1, Math.min(1, v * 0.35)) * 32767);
    for (let c = 0; c < channels; c++) data.writeInt16LE(s, (i * channels + c) * 2);
  }
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(36 + data.length, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * channels * 2, 28); h.writeUInt16LE(channels * 2, 32);
  h.writeUInt16LE(16, 34); h.write('data', 36); h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

const upload = (server, fields, file, filename = 'upload.wav') => server.postForm('/humanaudio', fields, file, filename);

test('/humanaudio: a WAV and an MP3 are heard with their rhythm, lips move; bad uploads refused', async (t) => {
  const { server, page } = await serverAndPage(t, ['--max-audio-seconds', '10', '--max-upload', String(1 << 20)]);
  await page.click('#start');
  assert.ok(await until(() => page.evaluate(() => talker.pc && talker.pc.connectionState === 'connected'), 40000));
  const id = await page.evaluate(() => talker.sessionid);
  await installAvProbe(page);
  assert.ok(await until(async () => ((await inbound(page)).video || {}).framesDecoded > 10, 10000));
  const idleStart = await page.evaluate(() => performance.now());
  await sleep(2500);
  const idleEnd = await page.evaluate(() => performance.now());

  // 22.05 kHz stereo (resampled and mixed down by the server), and an MP3 of it.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'talker-upload-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const wavBytes = wav(3.4, 22050, 2);
  fs.writeFileSync(path.join(tmp, 'u.wav'), wavBytes);
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', path.join(tmp, 'u.wav'), '-codec:a', 'libmp3lame',
    '-b:a', '96k', path.join(tmp, 'u.mp3')]);
  const mp3Bytes = fs.readFileSync(path.join(tmp, 'u.mp3'));

  const expected = bursts.slice(1).map(([a], i) => a - bursts[i][0]);  // onset intervals, s
  for (const [name, bytes] of [['u.wav', wavBytes], ['u.mp3', mp3Bytes]]) {
    const since = await page.evaluate(() => performance.now());
    const r = await upload(server, { sessionid: id }, bytes, name);
    assert.strictEqual(r.json && r.json.code, 0, r.text);
    assert.ok(Math.abs(r.json.data.seconds - 3.4) < 0.1, `decoded length ${r.json.data.seconds} s`);
    // Heard: three onsets with the upload's spacing.
    assert.ok(await until(() => page.evaluate((s) => window.avOnsets.filter((x) => x > s).length >= 3, since), 15000),
      `${name}: three bursts heard`);
    const onsets = await page.evaluate((s) => window.avOnsets.filter((x) => x > s), since);
    const heard = onsets.slice(1, 3).map((x, i) => (x - onsets[i]) / 1000);
    console.log(`# ${name}: burst spacing heard ${heard.map((x) => x.toFixed(3)).join(', ')} s, uploaded ${expected.join(', ')} s`);
    assert.strictEqual(onsets.length, 3, `${name}: exactly three bursts: ${onsets}`);
    // Bound 40 ms: an onset is read where the receiver hands out its 10 ms
    // chunk (JavaScript timing, jitter of a chunk or two under load) and MP3's
    // pre-echo can start a burst up to one granule early (576 samples, 26 ms).
    // The spacings differ by 500 ms, so the rhythm is still unmistakable.
    heard.forEach((h, i) => assert.ok(Math.abs(h - expected[i]) < 0.040, `${name}: spacing ${h} vs ${expected[i]}`));
    await until(async () => (await server.post('/is_speaking', { sessionid: id })).json.data === false, 10000);
    // The lips: generated (far from every idle frame) while a burst plays.
    // Compared with a second of frames from 1.5 s after the last onset (past
    // the burst, the last batch and the transition): waited for, since on a
    // loaded machine the browser may show them later than the sound.
    const quietFrom = onsets[2] + 1500;
    let d = [];
    await until(async () => {
      d = await distances(page, idleStart, idleEnd);
      return d.filter((s) => s.t > quietFrom + 1000).length > 0;
    }, 15000, 200);
    const during = d.filter((s) => bursts.some(([a, b]) => s.t > onsets[0] + (a - bursts[0][0]) * 1000 + 150 &&
      s.t < onsets[0] + (b - bursts[0][0]) * 1000)).map((s) => s.d);
    const quietAfter = d.filter((s) => s.t > quietFrom && s.t < quietFrom + 1000).map((s) => s.d);
    console.log(`# ${name}: mouth distance to idle while bursts play ${median(during).toFixed(2)} (${during.length} frames), after ${median(quietAfter).toFixed(2)}`);
    assert.ok(quietAfter.length > 5, `${name}: frames after the speech: ${quietAfter.length}`);
    assert.ok(during.length > 10 && median(during) > 4 * Math.max(1, median(quietAfter)), `${name}: the lips move`);
  }

  // Refused, with the reason, and the session goes on.
  const text = await upload(server, { sessionid: id }, Buffer.from('just some words, not audio\n'.repeat(50)), 'a.txt');
  assert.strictEqual(text.json.code, -1);
  assert.match(text.json.msg, /^file: /);
  const long = await upload(server, { sessionid: id }, wav(12, 8000, 1, []), 'long.wav');
  assert.deepStrictEqual([long.json.code, long.json.msg], [-1, 'file: longer than 10 s']);
  const big = await upload(server, { sessionid: id }, Buffer.alloc(1.5 * (1 << 20)), 'big.wav');
  assert.strictEqual(big.status, 413);
  assert.match((await upload(server, { sessionid: id }, null)).json.msg, /^file: missing/);
  assert.match((await upload(server, {}, wavBytes)).json.msg, /^sessionid: missing/);
  assert.match((await upload(server, { sessionid: 123456789012 }, wavBytes)).json.msg, /^sessionid: no such session/);
  assert.match((await server.post('/humanaudio', { sessionid: id })).json.msg, /multipart/);
  // A playlist would make an adaptive demuxer fetch its URLs: never plugged.
  let fetched = 0;
  const target = http.createServer((req, res) => { fetched++; res.end(); });
  await new Promise((r) => target.listen(0, '127.0.0.1', r));
  t.after(() => target.close());
  const base = `http://127.0.0.1:${target.address().port}`;
  const playlist = `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n${base}/a.ts\n#EXTINF:2.0,\n${base}/b.ts\n#EXT-X-ENDLIST\n`;
  const hls = await upload(server, { sessionid: id }, Buffer.from(playlist), 'x.m3u8');
  assert.strictEqual(hls.json.code, -1, hls.text);
  await sleep(500);
  assert.strictEqual(fetched, 0, 'the server fetched nothing');
  console.log(`# refused: ${[text, long, hls].map((r) => r.json.msg).join(' | ')}`);
  assert.strictEqual((await server.post('/human', { sessionid: id, text: 'Still here.' })).json.code, 0);
});

function probe(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-show_format',
    '-of', 'json', file]);
  return JSON.parse(out.toString());
}

// RMS of the file's audio, 16 kHz mono, in 100 ms windows.
function audioLevels(file) {
  const pcm = execFileSync('ffmpeg', ['-v', 'error', '-i', file, '-vn', '-f', 's16le', '-ac', '1', '-ar', '16000', '-'],
    { maxBuffer: 1 << 28 });
  const levels = [];
  for (let at = 0; at + 3200 <= pcm.length; at += 3200) {
    let sum = 0;
    for (let i = 0; i < 3200; i += 2) { const v = pcm.readInt16LE(at + i); sum += v * v; }
    levels.push(Math.sqrt(sum / 1600));
  }
  return levels;
}

test('/record: an MP4 of what the viewer got; a recording cut by killing the server still plays', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'talker-record-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { server, page } = await serverAndPage(t, ['--record-dir', dir]);
  await page.click('#start');
  assert.ok(await until(() => page.evaluate(() => talker.pc && talker.pc.connectionState === 'connected'), 40000));
  const id = await page.evaluate(() => talker.sessionid);
  assert.match((await server.get(`/record/${id}`)).json.msg, /no recording/);
  // The viewer has video (the first frames come a latency after connecting).
  assert.ok(await until(async () => ((await inbound(page)).video || {}).framesDecoded > 25, 10000));

  const started = Date.now();
  assert.strictEqual((await server.post('/record', { sessionid: id, type: 'start_record' })).json.code, 0);
  assert.strictEqual((await server.sessions())[0].recording, true);
  assert.match((await server.post('/record', { sessionid: id, type: 'start_record' })).json.msg, /already recording/);
  assert.strictEqual((await server.get(`/record/${id}`)).status, 409, 'not served while being written');
  await sleep(1000);
  await server.post('/human', { sessionid: id, text: 'Hello there, this part of the session is being recorded.' });
  // The speech leaves one session latency after /human (7 s on a loaded
  // machine, CI): record 4 s of it after that.
  const latency = (await server.sessions())[0].latency_ms;
  await sleep(latency + 4000);
  assert.strictEqual((await server.post('/record', { sessionid: id, type: 'end_record' })).json.code, 0);
  const ended = Date.now();
  const r = await fetch(`${server.base}/record/${id}`);
  assert.strictEqual(r.status, 200);
  assert.strictEqual(r.headers.get('content-type'), 'video/mp4');
  const file = path.join(dir, 'got.mp4');
  fs.writeFileSync(file, Buffer.from(await r.arrayBuffer()));
  const info = probe(file);
  const video = info.streams.find((s) => s.codec_type === 'video'), audio = info.streams.find((s) => s.codec_type === 'audio');
  assert.ok(video && audio, JSON.stringify(info.streams.map((s) => s.codec_name)));
  assert.strictEqual(video.codec_name, 'h264');
  assert.strictEqual(audio.codec_name, 'opus');
  assert.deepStrictEqual([video.width, video.height], [320, 240]);
  const wall = (ended - started) / 1000, duration = Number(info.format.duration);
  const frames = Number(video.nb_read_frames);
  console.log(`# recording: ${duration.toFixed(2)} s (${frames} frames, audio from ${Number(audio.start_time).toFixed(3)} s, video from ${Number(video.start_time).toFixed(3)} s) for ${wall.toFixed(2)} s between start_record and end_record`);
  // It starts at the key frame asked for at start_record (x264 gives it on
  // its next frame, the viewer a latency later) and ends at end_record: the
  // same span of the viewer's timeline, within a few frames and the two
  // HTTP round trips. Bound 0.5 s.
  assert.ok(Math.abs(duration - wall) < 0.5, `duration ${duration} s vs ${wall} s`);
  assert.ok(Math.abs(frames - 25 * duration) < 10, `${frames} frames at 25 fps`);
  assert.ok(Math.abs(Number(audio.start_time) - Number(video.start_time)) < 0.1, 'both streams from the start');
  // The speech is in it, after a second of silence.
  const levels = audioLevels(file);
  console.log(`# recording: audio RMS per 100 ms ${levels.map((x) => Math.round(x)).join(' ')}`);
  assert.ok(Math.max(...levels.slice(0, 8)) < 50, 'silent before /human');
  assert.ok(Math.max(...levels.slice(10)) > 1000, 'the speech is recorded');

  // Killed mid-recording: fragments written so far stay playable.
  assert.strictEqual((await server.post('/record', { sessionid: id, type: 'start_record' })).json.code, 0);
  await sleep(4500);
  server.proc.kill('SIGKILL');
  await new Promise((resolve) => server.proc.once('exit', resolve));
  const cut = path.join(dir, `${id}.mp4`);
  const cutInfo = probe(cut);
  const cutFrames = Number(cutInfo.streams.find((s) => s.codec_type === 'video').nb_read_frames);
  console.log(`# recording cut by SIGKILL after 4.5 s: ${cutFrames} frames readable, ${cutInfo.streams.length} streams`);
  assert.strictEqual(cutInfo.streams.length, 2);
  assert.ok(cutFrames >= 25 * 3, 'all whole fragments readable');
  execFileSync('ffmpeg', ['-v', 'error', '-i', cut, '-f', 'null', '-']);  // decodes
});
