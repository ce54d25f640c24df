// SPDX-License-Identifier: LGPL-2.1-or-later
// Avatar jobs (/api/avatar/task): Debian's Megamind.avi (opencv-doc) uploaded,
// built by talker-avatar with the server's VAE while progress is polled, then
// used by a session that chromium receives; a queue of one; cancelling;
// refusals of what is not a video or photo, of bad names, paths, sizes.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { startServer, serverAndPage, makeOffers, until } = require('./harness');
const { inbound } = require('./probes');

const MEGAMIND = '/usr/share/doc/opencv-doc/examples/data/Megamind.avi';

const createTask = (server, fields, file, filename) => server.postForm('/api/avatar/task', fields, file, filename);

async function task(server, id) { return (await server.get(`/api/avatar/task/${id}`)).json; }

function sourcesFolder(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'talker-sources-'));
  fs.symlinkSync(MEGAMIND, path.join(dir, 'megamind.avi'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('avatar job: Megamind.avi uploaded, progress reported, the avatar used by a session', async (t) => {
  const { server, page } = await serverAndPage(t, ['--max-avatar-upload', String(8 << 20)]);
  const r = await createTask(server, { name: 'megamind', max_frames: 40, bbox_shift: 0, extra_margin: 10 },
    fs.readFileSync(MEGAMIND), 'Megamind.avi');
  assert.strictEqual(r.json.code, 0, r.text);
  const id = r.json.data.task_id;
  assert.match(id, /^[0-9a-f]{16}$/, 'an unguessable id');
  assert.strictEqual(r.json.data.input.kind, 'video');
  assert.strictEqual(r.json.data.input.width, 720);
  assert.strictEqual(r.json.data.input.height, 528);
  assert.ok(['queued', 'running'].includes(r.json.data.state));

  const started = Date.now();
  const seen = [];
  let last;
  await until(async () => {
    last = (await task(server, id)).data;
    if (last.state === 'running' && last.stage) seen.push({ stage: last.stage, progress: last.progress, done: last.done, total: last.total });
    return !['queued', 'running'].includes(last.state);
  }, 180000, 150);
  const took = (Date.now() - started) / 1000;
  const distinct = [...new Set(seen.map((s) => s.progress.toFixed(3)))];
  console.log(`# avatar job: ${last.state} in ${took.toFixed(1)} s; progress seen ${distinct.join(' ')}; stages ${[...new Set(seen.map((s) => s.stage))].join(' ')}`);
  assert.strictEqual(last.state, 'done', JSON.stringify(last));
  assert.strictEqual(last.progress, 1);
  assert.ok(distinct.length >= 3, `progress reported along the way: ${distinct}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress >= seen[i - 1].progress, 'progress never goes back');
  assert.ok(seen.every((s) => s.progress > 0 - 1e-9 && s.progress <= 1 && s.done <= s.total));
  assert.ok(seen.some((s) => s.stage === 'faces'), 'the face stage is reported');

  // The avatar is in the folder, whole, and the work is gone.
  const meta = JSON.parse(fs.readFileSync(path.join(server.avatars, 'megamind', 'avatar.json')));
  assert.strictEqual(meta.frame_count, 40);
  assert.strictEqual(meta.width, 720);
  assert.strictEqual(meta.source, 'upload', 'no server path in the avatar');
  assert.ok(meta.faces_detected >= 30, `faces found in ${meta.faces_detected} of 40 frames`);
  assert.deepStrictEqual(fs.readdirSync(path.join(server.avatars, '.tasks')), []);
  const listed = (await server.get('/api/avatar/tasks')).json.data.tasks;
  assert.deepStrictEqual(listed.map((x) => [x.task_id, x.name, x.state]), [[id, 'megamind', 'done']]);

  // Usable by name at once: a session with it reaches chromium at its size, and talks.
  const [sdp] = await makeOffers(page, 1);
  const a = (await server.post('/offer', { sdp, type: 'offer', avatar: 'megamind' })).json;
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  await page.evaluate((sdp) => window.pcs[0].setRemoteDescription({ type: 'answer', sdp }), a.sdp);
  await server.post('/human', { sessionid: a.sessionid, text: 'I am Megamind, made through the API.' });
  const got = await until(async () => {
    const s = await inbound(page, 'window.pcs[0]');
    return s.video && s.video.framesDecoded > 50 && s.video.frameWidth === 720 ? s : null;
  }, 20000);
  assert.ok(got, JSON.stringify(await inbound(page, 'window.pcs[0]')));
  const info = (await server.sessions()).find((x) => x.sessionid === a.sessionid);
  assert.strictEqual(info.avatar, 'megamind');
  assert.ok(await until(async () => (await server.sessions())[0].frames_generated > 0, 10000), 'lips generated on it');

  // Forgetting a finished task keeps its avatar.
  assert.strictEqual((await server.get(`/api/avatar/task/${id}`)).json.code, 0);
  const del = await fetch(`${server.base}/api/avatar/task/${id}`, { method: 'DELETE' });
  assert.strictEqual((await del.json()).msg, 'removed');
  assert.match((await task(server, id)).msg, /no such task/);
  assert.ok(fs.existsSync(path.join(server.avatars, 'megamind', 'avatar.json')));
});

test('avatar jobs: one at a time, cancel, a failed build, bad requests refused', async (t) => {
  const sources = sourcesFolder(t);
  const server = await startServer(['--avatar-sources', sources, '--max-avatar-upload', '200000', '--avatar-max-frames', '300']);
  t.after(() => server.stop());
  const json = (body) => server.post('/api/avatar/task', body);

  // One at a time (--avatar-jobs 1): the second waits.
  const first = (await json({ source: 'megamind.avi', name: 'slow', max_frames: 300 })).json;
  assert.strictEqual(first.code, 0, JSON.stringify(first));
  const second = (await json({ source: 'megamind.avi', name: 'waiting', max_frames: 5 })).json;
  assert.strictEqual(second.code, 0, JSON.stringify(second));
  assert.ok(await until(async () => (await task(server, first.data.task_id)).data.state === 'running', 5000));
  assert.strictEqual((await task(server, second.data.task_id)).data.state, 'queued');
  assert.match((await json({ source: 'megamind.avi', name: 'slow' })).json.msg, /^name: .*being made/);
  // Cancel the queued one, then the running one: no avatar, no work left.
  const cancel = async (id) => (await (await fetch(`${server.base}/api/avatar/task/${id}`, { method: 'DELETE' })).json());
  assert.strictEqual((await cancel(second.data.task_id)).msg, 'cancelled');
  assert.ok(await until(async () => (await task(server, first.data.task_id)).data.progress > 0, 30000));
  assert.strictEqual((await cancel(first.data.task_id)).msg, 'cancelled');
  assert.ok(await until(async () => (await server.get('/api/avatar/tasks')).json.data.tasks.length === 0, 10000));
  assert.ok(!fs.existsSync(path.join(server.avatars, 'slow')) && !fs.existsSync(path.join(server.avatars, 'waiting')));
  assert.ok(await until(() => fs.readdirSync(path.join(server.avatars, '.tasks')).length === 0, 5000), 'work removed');
  assert.match((await cancel(first.data.task_id)).msg, /no such task/);

  // A photo with no face: accepted (it is a photo), the build fails with the builder's reason.
  const blank = path.join(os.tmpdir(), `talker-blank-${process.pid}.png`);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'color=c=blue:s=320x240', '-frames:v', '1', blank]);
  const noface = await createTask(server, { name: 'blank' }, fs.readFileSync(blank), 'blank.png');
  fs.rmSync(blank);
  assert.strictEqual(noface.json.code, 0, noface.text);
  assert.strictEqual(noface.json.data.input.kind, 'photo');
  let failed;
  assert.ok(await until(async () => (failed = (await task(server, noface.json.data.task_id)).data).state === 'failed', 30000));
  console.log(`# a photo without a face: ${failed.error}`);
  assert.match(failed.error, /no face found/);
  assert.ok(!fs.existsSync(path.join(server.avatars, 'blank')));

  // Refusals, each with the field at fault.
  const refusals = [
    [await createTask(server, { name: 'text' }, Buffer.from('hello, this is not a video\n'.repeat(50)), 'clip.mp4'), /^file: not an image or a video/],
    // A playlist naming a file on the server: FFmpeg's HLS demuxer would make a video of it.
    [await createTask(server, { name: 'playlist' }, Buffer.from(`#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n${MEGAMIND}\n#EXT-X-ENDLIST\n`), 'x.m3u8'), /^file: not an image or a video/],
    [await createTask(server, { name: 'nofile' }), /^file: missing/],
    [await createTask(server, { name: 'empty' }, Buffer.alloc(0)), /^file: empty/],
    [await createTask(server, {}, fs.readFileSync(MEGAMIND).subarray(0, 1000)), /^name: missing/],
    [await json({ name: '../escape', source: 'megamind.avi' }), /^name: .* is not an avatar name/],
    [await json({ name: '.hidden', source: 'megamind.avi' }), /^name: .* is not an avatar name/],
    [await json({ name: 'default', source: 'megamind.avi' }), /^name: an avatar named 'default' exists/],
    [await json({ name: 'x', source: '../../etc/passwd' }), /^source: must be a file name/],
    [await json({ name: 'x', source: 'missing.avi' }), /^source: no file named 'missing.avi'/],
    [await json({ name: 'x', source: 'megamind.avi', bbox_shift: 'up' }), /^bbox_shift: must be an integer/],
    // JSON gives numbers; only a form's fields are text.
    [await json({ name: 'x', source: 'megamind.avi', bbox_shift: '0' }), /^bbox_shift: must be an integer/],
    [await json({ name: 'x', source: 'megamind.avi', extra_margin: 999 }), /^extra_margin: must be in 0..200/],
    [await json({ name: 'x', source: 'megamind.avi', max_frames: 301 }), /^max_frames: must be in 1..300/],
    [await createTask(server, { name: 'both', source: 'megamind.avi' }, Buffer.from('x')), /^file, source: give one/],
    [await json('not json'), /^body: not JSON/],
  ];
  for (const [r, re] of refusals) {
    assert.strictEqual(r.status, 200, r.text);
    assert.ok(r.json, `${re}: ${r.text}`);
    assert.strictEqual(r.json.code, -1, r.text);
    assert.match(r.json.msg, re);
  }
  // Over --max-avatar-upload: 413 before the body is read.
  const big = await createTask(server, { name: 'big' }, fs.readFileSync(MEGAMIND));
  assert.strictEqual(big.status, 413);
  // Nothing was left behind by the refusals.
  assert.deepStrictEqual(fs.readdirSync(path.join(server.avatars, '.tasks')), []);
  assert.deepStrictEqual((await server.get('/api/avatar/tasks')).json.data.tasks.map((x) => x.state), ['failed']);
  // An unknown or malformed id.
  assert.match((await task(server, 'ffffffffffffffff')).msg, /no such task/);
  const odd = await server.get('/api/avatar/task/..%2F..%2Fetc');
  assert.ok(odd.status === 400 || (odd.json && odd.json.code === -1), `${odd.status} ${odd.text}`);
});

test('avatar jobs off: --avatar-jobs 0', async (t) => {
  const server = await startServer(['--avatar-jobs', '0']);
  t.after(() => server.stop());
  assert.match((await server.post('/api/avatar/task', { name: 'x' })).json.msg, /avatar jobs are off/);
  assert.match((await server.get('/api/avatar/tasks')).json.msg, /avatar jobs are off/);
});
