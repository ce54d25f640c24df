// SPDX-License-Identifier: LGPL-2.1-or-later
// Push sessions (POST /push): the talking head streamed to nginx with
// Debian's RTMP module (its FLV recording read back with ffprobe/ffmpeg) and
// to the WHIP test endpoint (tests/whip/whip-endpoint.js: chromium decodes
// what arrives). Both servers are started here on loopback and stopped after.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { startServer, until } = require('./harness');
const { sleep } = require('./probes');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function startNginxRtmp(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'talker-nginx-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'nginx.conf'),
    'load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\ndaemon off;\nmaster_process off;\n' +
    `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log info;\nevents { worker_connections 64; }\n` +
    `rtmp { server { listen 127.0.0.1:${port}; application live { live on; record all; record_path ${dir}; } } }\n`);
  const proc = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir + '/'], { stdio: 'ignore' });
  t.after(async () => {
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const open = () => new Promise((r) => { const c = net.connect(port, '127.0.0.1', () => { c.end(); r(true); }); c.on('error', () => r(false)); });
  assert.ok(await until(open, 5000, 50), 'nginx listens');
  return { port, dir };
}

async function startWhipEndpoint(t) {
  // Its own process group, so that its chromium goes with it.
  const proc = spawn('node', [path.join(__dirname, '../whip/whip-endpoint.js')],
    { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const exited = new Promise((r) => proc.once('exit', r));
  let port = 0;
  t.after(async () => {
    // /control/quit closes chromium; the group is killed if that takes too long.
    if (port) await fetch(`http://127.0.0.1:${port}/control/quit`, { method: 'POST' }).catch(() => {});
    const timer = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch (e) { /* gone */ } }, 5000);
    await exited;
    clearTimeout(timer);
  });
  port = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => { const m = d.toString().match(/READY (\d+)/); if (m) resolve(Number(m[1])); });
    exited.then(() => reject(new Error('the WHIP endpoint did not start')));
  });
  const get = async (what) => (await fetch(`http://127.0.0.1:${port}/control/${what}`)).json();
  return { port, get };
}

function freeUdpPort() {
  const dgram = require('dgram');
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// The real SRS (../shared/srs/srs, 7.0.18) on loopback, ports chosen here;
// WHIP publish in, HTTP-FLV (its rtc_to_rtmp bridge) out.
async function startSrs(t) {
  const binary = process.env.TALKER_SRS || path.join(__dirname, '../../../shared/srs/srs');
  assert.ok(fs.existsSync(binary), `no SRS at ${binary} (set TALKER_SRS)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'talker-srs-'));
  fs.mkdirSync(path.join(dir, 'html'));
  const [rtmp, http, api, rtc] = [await freePort(), await freePort(), await freePort(), await freeUdpPort()];
  fs.writeFileSync(path.join(dir, 'srs.conf'),
    `listen 127.0.0.1:${rtmp};\nmax_connections 100;\ndaemon off;\nsrs_log_tank console;\npid ./srs.pid;\n` +
    `http_server { enabled on; listen 127.0.0.1:${http}; dir ./html; }\nhttp_api { enabled on; listen 127.0.0.1:${api}; }\n` +
    `stats { network 0; }\nrtc_server { enabled on; listen ${rtc}; candidate 127.0.0.1; }\n` +
    'vhost __defaultVhost__ {\n  rtc { enabled on; rtmp_to_rtc on; rtc_to_rtmp on; }\n' +
    '  http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }\n}\n');
  const log = fs.openSync(path.join(dir, 'srs.log'), 'a');
  let proc = null;
  const launch = () => { proc = spawn(binary, ['-c', 'srs.conf'], { cwd: dir, stdio: ['ignore', log, log] }); };
  const stop = async () => {
    const p = proc;
    p.kill('SIGKILL');
    await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', r)));
  };
  launch();
  t.after(async () => {
    proc.kill('SIGCONT');
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const open = () => new Promise((r) => { const c = net.connect(api, '127.0.0.1', () => { c.end(); r(true); }); c.on('error', () => r(false)); });
  assert.ok(await until(open, 10000, 50), 'SRS listens');
  const streams = async () => {
    try {
      return (await (await fetch(`http://127.0.0.1:${api}/api/v1/streams/?count=100`, { signal: AbortSignal.timeout(2000) })).json()).streams;
    } catch (e) { return []; }  // stopped, frozen or starting
  };
  return {
    dir,
    async kill() { await stop(); },
    async restart() { launch(); assert.ok(await until(open, 10000, 50), 'SRS listens again'); },
    freeze() { proc.kill('SIGSTOP'); },
    thaw() { proc.kill('SIGCONT'); },
    whip: (name) => `http://127.0.0.1:${api}/rtc/v1/whip/?app=live&stream=${name}`,
    flv: (name) => `http://127.0.0.1:${http}/live/${name}.flv`,
    async stream(name) { return (await streams()).find((s) => s.name === name && s.publish && s.publish.active); },
  };
}

test('RTMP push: /push streams to nginx-rtmp, speech and video arrive, two pushes get their own stream', async (t) => {
  const nginx = await startNginxRtmp(t);
  const server = await startServer(['--transport', 'rtmp', '--push-url', `rtmp://127.0.0.1:${nginx.port}/live/talker{n}`]);
  t.after(() => server.stop());
  const started = Date.now();
  const a = (await server.post('/push', {})).json;
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  assert.deepStrictEqual(a.data, { transport: 'rtmp', slot: 0 });
  const b = (await server.post('/push', { avatar: 'second' })).json;
  assert.strictEqual(b.code, 0, JSON.stringify(b));
  assert.strictEqual(b.data.slot, 1);
  assert.ok(await until(async () => (await server.sessions()).every((s) => s.push_state === 'connected'), 20000),
    JSON.stringify(await server.sessions()));
  const connectedAt = Date.now();
  const s = (await server.sessions()).find((x) => x.sessionid === a.sessionid);
  assert.strictEqual(s.transport, 'rtmp');
  assert.strictEqual(s.connected, true);
  await server.post('/human', { sessionid: a.sessionid, text: 'Hello everyone watching this live stream.' });
  // The speech (about 3 s) reaches nginx one session latency after it is said.
  await sleep(s.latency_ms + 5000);
  // A push is a broadcast: it is ended by the API, not by idling.
  assert.strictEqual((await server.post('/end_session', { sessionid: a.sessionid })).json.code, 0);
  assert.strictEqual((await server.post('/end_session', { sessionid: b.sessionid })).json.code, 0);
  const endedAt = Date.now();
  const pushed = (endedAt - started) / 1000;
  await until(async () => (await server.sessions()).length === 0, 5000);
  await sleep(1000);  // nginx closes the recordings

  const flv = path.join(nginx.dir, 'talker0.flv');
  assert.ok(fs.existsSync(path.join(nginx.dir, 'talker1.flv')), 'the second push has its own stream');
  const info = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-show_format', '-of', 'json', flv]));
  const codecs = info.streams.map((x) => x.codec_name).sort();
  const frames = Number(info.streams.find((x) => x.codec_name === 'h264').nb_read_frames);
  const duration = Number(info.format.duration);
  console.log(`# RTMP push: ${codecs.join('+')}, ${duration.toFixed(1)} s, ${frames} frames, in ${pushed.toFixed(1)} s of /push to /end_session`);
  assert.deepStrictEqual(codecs, ['aac', 'h264']);
  // The stream starts once the connection is up and one pipeline latency (its first buffer is
  // rendered then) after /push answered, whichever is later, plus the first key frame (x264's
  // first frame is one; 1 s of slack); it cannot be longer than the push.
  const from = Math.max(connectedAt, started + s.latency_ms);
  const expected = (endedAt - from) / 1000;
  console.log(`# RTMP push: connected ${connectedAt - started} ms after /push, latency ${s.latency_ms} ms`);
  assert.ok(duration > expected - 1 && duration < pushed + 0.5,
    `${duration} s recorded of ${pushed} s pushed, ${expected.toFixed(2)} s after connection and latency`);
  assert.ok(Math.abs(frames / duration - 25) < 2, `${frames} frames in ${duration} s`);
  // The speech reached the platform.
  const pcm = execFileSync('ffmpeg', ['-v', 'error', '-i', flv, '-vn', '-f', 's16le', '-ac', '1', '-ar', '16000', '-'], { maxBuffer: 1 << 27 });
  let loud = 0;
  for (let i = 0; i + 1 < pcm.length; i += 2) if (Math.abs(pcm.readInt16LE(i)) > 3000) loud++;
  assert.ok(loud > 16000 * 0.2, `speech in the stream (${loud} loud samples)`);
});

test('WHIP push: /push streams to a WHIP endpoint with the token; /end_session sends DELETE', async (t) => {
  const endpoint = await startWhipEndpoint(t);
  process.env.TALKER_TEST_PUSH_TOKEN = 'pu5h';
  const server = await startServer(['--transport', 'whip', '--push-url', `http://127.0.0.1:${endpoint.port}/whip/live`,
    '--push-token-env', 'TALKER_TEST_PUSH_TOKEN']);
  t.after(() => server.stop());
  const a = (await server.post('/push', {})).json;
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  // No {n} in the URL: one push at a time.
  assert.match((await server.post('/push', {})).json.msg, /already running/);
  assert.ok(await until(async () => (await server.sessions())[0].push_state === 'connected', 20000));
  const latency = (await server.sessions())[0].latency_ms;
  await server.post('/human', { sessionid: a.sessionid, text: 'Hello over WHIP.' });
  // Heard one latency after it is said; a loaded machine may need a second
  // session first (see docs/elements/talkerwhipsink.md, the RTCP watch).
  const last = async () => (await endpoint.get('sessions')).at(-1);
  assert.ok(await until(async () => {
    const r = await last();
    return r && r.framesDecoded > 75 && r.beeps.length > 0;
  }, latency + 25000), JSON.stringify(await endpoint.get('sessions')));
  const r = await last();
  console.log(`# WHIP push: ${r.framesDecoded} frames decoded at ${r.width}x${r.height}, codecs ${r.codecs.join(' ')}, speech heard`);
  assert.ok(r.codecs.includes('video/H264') && r.codecs.some((c) => c.toLowerCase() === 'audio/opus'), r.codecs.join(' '));
  assert.strictEqual((await server.post('/end_session', { sessionid: a.sessionid })).json.code, 0);
  assert.ok(await until(async () => (await endpoint.get('requests')).some((q) => q.method === 'DELETE'), 5000));
  const requests = await endpoint.get('requests');
  assert.ok(requests.every((q) => q.authorization === 'Bearer pu5h'), JSON.stringify(requests));
  assert.ok(!server.lines.some((l) => l.includes('pu5h')), 'the token is never logged');
});

test('WHIP push to the real SRS: speech and a moving mouth in its FLV; /end_session ends the stream', async (t) => {
  const srs = await startSrs(t);
  const server = await startServer(['--transport', 'whip', '--push-url', srs.whip('talker')]);
  t.after(() => server.stop());
  const a = (await server.post('/push', {})).json;
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  assert.ok(await until(async () => (await server.sessions())[0].push_state === 'connected', 30000),
    JSON.stringify(await server.sessions()));
  const latency = (await server.sessions())[0].latency_ms;
  // A viewer once SRS has the stream's video (the idle face, one latency in).
  assert.ok(await until(async () => { const s = await srs.stream('talker'); return s && s.video; }, latency + 15000),
    JSON.stringify(await srs.stream('talker')));
  const flv = path.join(srs.dir, 'talker.flv');
  const viewer = spawn('curl', ['-s', '-N', '-o', flv, srs.flv('talker')], { stdio: 'ignore' });
  t.after(() => viewer.kill('SIGKILL'));
  await sleep(1000);
  await server.post('/human', { sessionid: a.sessionid, text: 'Hello everyone, this is a push to SRS.' });
  await sleep(latency + 5000);
  viewer.kill('SIGTERM');
  assert.strictEqual((await server.post('/end_session', { sessionid: a.sessionid })).json.code, 0);
  // DELETE reached SRS: the stream is unpublished.
  assert.ok(await until(async () => !(await srs.stream('talker')), 5000), 'SRS dropped the stream');
  assert.ok(!server.lines.some((l) => /reconnecting/.test(l)), 'one session');

  const info = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', flv]));
  assert.deepStrictEqual(info.streams.map((x) => x.codec_name).sort(), ['aac', 'h264']);
  // The speech: a second of loud samples at least.
  const pcm = execFileSync('ffmpeg', ['-v', 'error', '-i', flv, '-vn', '-f', 's16le', '-ac', '1', '-ar', '16000', '-'], { maxBuffer: 1 << 27 });
  let loud = 0;
  for (let i = 0; i + 1 < pcm.length; i += 2) if (Math.abs(pcm.readInt16LE(i)) > 3000) loud++;
  assert.ok(loud > 16000 * 0.2, `speech in SRS's FLV (${loud} loud samples)`);
  // The mouth: the lower half of the micro avatar's face box (70..250 x 110..200
  // of 320x240) moves far more while it speaks than while idle. The idle
  // avatar's own frames move a little: compare with its first second.
  const w = 320, h = 240;
  const gray = execFileSync('ffmpeg', ['-v', 'error', '-i', flv, '-an', '-f', 'rawvideo', '-pix_fmt', 'gray', '-s', `${w}x${h}`, '-'], { maxBuffer: 1 << 28 });
  const frames = gray.length / (w * h);
  const mouth = (f) => { const o = []; for (let y = 110; y < 200; y++) for (let x = 70; x < 250; x++) o.push(gray[f * w * h + y * w + x]); return o; };
  const diffs = [];
  for (let f = 1; f < frames; f++) {
    const a0 = mouth(f - 1), a1 = mouth(f);
    let d = 0;
    for (let i = 0; i < a0.length; i++) d += Math.abs(a0[i] - a1[i]);
    diffs.push(d / a0.length);
  }
  const idle = Math.max(...diffs.slice(0, 20));
  const moving = diffs.filter((d) => d > 3 * Math.max(1, idle)).length;
  console.log(`# WHIP push to SRS: ${frames} frames, mouth change per frame idle <= ${idle.toFixed(2)}, ${moving} frames moving far more; ${loud} loud samples; latency ${latency.toFixed(0)} ms`);
  assert.ok(frames > 5 * 25, `${frames} frames`);
  assert.ok(moving > 20, `the mouth moves while speaking (${moving} frames)`);
});

test('WHIP push to the real SRS survives it: killed and restarted, frozen and thawed', async (t) => {
  const srs = await startSrs(t);
  const server = await startServer(['--transport', 'whip', '--push-url', srs.whip('survivor')]);
  t.after(() => server.stop());
  const a = (await server.post('/push', {})).json;
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  const state = async () => ((await server.sessions())[0] || {}).push_state;
  assert.ok(await until(async () => (await state()) === 'connected', 30000), JSON.stringify(await server.sessions()));
  const latency = (await server.sessions())[0].latency_ms;
  const hasAv = async () => { const s = await srs.stream('survivor'); return !!(s && s.video); };
  assert.ok(await until(hasAv, latency + 15000), JSON.stringify(await srs.stream('survivor')));
  // SRS's FLV for 6 s: both tracks, frames that come (from the next key
  // frame on: up to 2 s later).
  const flvHasAv = async (name) => {
    const flv = path.join(srs.dir, `${name}.flv`);
    const viewer = spawn('curl', ['-s', '-N', '--max-time', '6', '-o', flv, srs.flv('survivor')], { stdio: 'ignore' });
    await new Promise((r) => viewer.once('exit', r));
    if (!fs.existsSync(flv)) return { codecs: [], frames: 0 };
    let info = { streams: [] };
    try { info = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', flv])); } catch (e) { /* no FLV */ }
    const video = info.streams.find((x) => x.codec_type === 'video');
    return { codecs: info.streams.map((x) => x.codec_name).sort(), frames: video ? Number(video.nb_read_frames) : 0 };
  };
  const backWithAv = async (what, backAt) => {
    // The push is back once SRS has the stream with video again; a viewer
    // joining then gets both tracks (a second viewer if the first joined
    // during the swap, as a player retries).
    assert.ok(await until(async () => (await state()) === 'connected' && await hasAv(), 20000),
      `${what}: ${JSON.stringify(await server.sessions())}`);
    const seconds = (Date.now() - backAt) / 1000;
    let flv = await flvHasAv(`${what}-1`);
    if (flv.frames === 0) flv = await flvHasAv(`${what}-2`);
    console.log(`# ${what}: SRS has the push again ${seconds.toFixed(1)} s after it was back; FLV ${flv.codecs.join('+')}, ${flv.frames} frames in 6 s`);
    assert.ok(seconds < 5, `${what}: back after ${seconds} s`);
    assert.deepStrictEqual(flv.codecs, ['aac', 'h264'], what);
    assert.ok(flv.frames > 3 * 25, `${what}: ${flv.frames} frames`);
  };

  await srs.kill();
  await sleep(4000);
  await srs.restart();
  await backWithAv('killed and restarted', Date.now());

  srs.freeze();
  await sleep(6000);
  srs.thaw();
  await backWithAv('frozen 6 s', Date.now());

  // One session throughout (no pipeline error ended it), its reconnects in the log.
  const sessions = await server.sessions();
  assert.strictEqual(sessions.length, 1);
  assert.strictEqual(sessions[0].sessionid, a.sessionid);
  const reconnects = server.lines.filter((l) => /push reconnecting/.test(l));
  console.log(`# the server's log: ${reconnects.join(' | ')}`);
  assert.ok(reconnects.length >= 2, server.lines.join('\n'));
  assert.strictEqual((await server.post('/end_session', { sessionid: a.sessionid })).json.code, 0);
});
