// SPDX-License-Identifier: LGPL-2.1-or-later
// Per-request TTS options (/human's tts: voice, speed) with espeak in the
// server, and voice cloning references (/offer's refaudio, reftext) resolved
// by name in --voices, sent to a GPT-SoVITS api_v2 stand-in on loopback (no
// GPT-SoVITS model exists here: the stand-in answers a streamed WAV tone and
// records what it was asked).
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { serverAndPage, makeOffers, until } = require('./harness');

// A session; `connect`: the page takes the answer and waits for the
// connection (the session's playback clock, and its events, run from then).
async function offer(server, page, extra = {}, connect = false) {
  const [sdp] = await makeOffers(page, 1);
  const a = (await server.post('/offer', { sdp, type: 'offer', ...extra })).json;
  if (connect && a.code === 0) {
    await page.evaluate((a) => window.pcs[window.pcs.length - 1].setRemoteDescription(a), a);
    assert.ok(await until(() => page.evaluate(() => window.pcs[window.pcs.length - 1].connectionState === 'connected'), 30000));
  }
  return a;
}

function sseEvents(server, id, t) {
  const events = [];
  const ctrl = new AbortController();
  t.after(() => ctrl.abort());
  fetch(`${server.base}/sse?sessionid=${id}`, { signal: ctrl.signal }).then(async (r) => {
    const decoder = new TextDecoder();
    for await (const chunk of r.body)
      for (const line of decoder.decode(chunk).split('\n'))
        if (line.startsWith('data: ')) events.push({ ...JSON.parse(line.slice(6)), at: Date.now() });
  }).catch(() => {});
  return events;
}

test('/human tts: speed and voice per request (espeak); bad options refused', async (t) => {
  const { server, page } = await serverAndPage(t);
  const a = await offer(server, page, {}, true);
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  const events = sseEvents(server, a.sessionid, t);
  const text = 'The quick brown fox jumps over the lazy dog.';
  const human = (extra) => server.post('/human', { sessionid: a.sessionid, text, type: 'echo', ...extra });
  // The sentence events are on the playback clock: their spans are the speech's length.
  const spoken = async (extra) => {
    const from = events.length;
    assert.strictEqual((await human(extra)).json.code, 0);
    assert.ok(await until(() => events.slice(from).some((e) => e.status === 'end'), 20000));
    const start = events.slice(from).find((e) => e.status === 'start'), end = events.slice(from).find((e) => e.status === 'end');
    return end.at - start.at;
  };
  const plain = await spoken({});
  const fast = await spoken({ tts: { speed: 2 } });
  const slow = await spoken({ tts: { speed: 0.5, voice: 'en-us' } });
  const german = await spoken({ tts: { voice: 'de' } });
  console.log(`# espeak "${text}": ${plain} ms, speed 2 ${fast} ms, speed 0.5 ${slow} ms, voice de ${german} ms`);
  assert.ok(fast < plain * 0.65 && fast > plain * 0.3, `speed 2: ${fast} ms vs ${plain} ms`);
  assert.ok(slow > plain * 1.5, `speed 0.5: ${slow} ms vs ${plain} ms`);

  const refused = [
    [{ tts: 'fast' }, /^tts: must be an object/],
    [{ tts: { pitch: 3 } }, /^tts: unknown key 'pitch'/],
    [{ tts: { speed: 5 } }, /^tts.speed: must be in 0.5..2/],
    [{ tts: { speed: '2' } }, /^tts.speed: must be a number/],
    [{ tts: { voice: '' } }, /^tts.voice: must be a voice name/],
    [{ tts: { voice: 'x'.repeat(65) } }, /^tts.voice: must be a voice name/],
    [{ tts: { voice: 'en\nus' } }, /^tts.voice: .*control/],
    [{ tts: { voice: 'qq-unknown' } }, /^tts: espeak: unknown voice 'qq-unknown'/],
  ];
  for (const [extra, re] of refused) {
    const r = (await human(extra)).json;
    assert.strictEqual(r.code, -1, JSON.stringify([extra, r]));
    assert.match(r.msg, re);
  }
  // Cloning needs an engine that clones.
  const clone = await offer(server, page, { refaudio: 'alice.wav' });
  assert.match(clone.msg, /^refaudio: the TTS engine 'espeak' does not clone voices/);
});

// GPT-SoVITS api_v2 as far as talkertts uses it: POST /tts, a streamed WAV.
function gptSovitsStandIn(t) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      seen.push({ path: req.url, body: JSON.parse(body) });
      const rate = 32000, n = rate / 2;
      const header = Buffer.alloc(44);
      header.write('RIFF', 0); header.writeUInt32LE(36 + n * 2, 4); header.write('WAVE', 8);
      header.write('fmt ', 12); header.writeUInt32LE(16, 16); header.writeUInt16LE(1, 20); header.writeUInt16LE(1, 22);
      header.writeUInt32LE(rate, 24); header.writeUInt32LE(rate * 2, 28); header.writeUInt16LE(2, 32); header.writeUInt16LE(16, 34);
      header.write('data', 36); header.writeUInt32LE(n * 2, 40);
      const pcm = Buffer.alloc(n * 2);
      for (let i = 0; i < n; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / rate)), i * 2);
      res.writeHead(200, { 'Content-Type': 'audio/wav' });
      res.end(Buffer.concat([header, pcm]));
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => {
    t.after(() => srv.close());
    resolve({ url: `http://127.0.0.1:${srv.address().port}`, seen });
  }));
}

test('/offer refaudio, reftext: a recording in --voices by name, never a path (GPT-SoVITS stand-in)', async (t) => {
  const tts = await gptSovitsStandIn(t);
  const voices = fs.mkdtempSync(path.join(os.tmpdir(), 'talker-voices-'));
  t.after(() => fs.rmSync(voices, { recursive: true, force: true }));
  fs.writeFileSync(path.join(voices, 'alice.wav'), 'RIFF');
  fs.writeFileSync(path.join(voices, 'alice.txt'), 'Hello, I am Alice.\n');
  fs.writeFileSync(path.join(voices, 'bob.wav'), 'RIFF');
  const { server, page } = await serverAndPage(t, ['--tts-engine', 'gpt-sovits', '--tts-server', tts.url,
    '--tts-ref-audio', '/srv/default.wav', '--tts-ref-text', 'The default voice.', '--voices', voices, '--max-sessions', '4']);

  const refusals = [
    [{ refaudio: '../alice.wav' }, /^refaudio: must be the name of a recording/],
    [{ refaudio: '/etc/passwd' }, /^refaudio: must be the name of a recording/],
    [{ refaudio: 'carol.wav' }, /^refaudio: no recording named 'carol.wav'/],
    [{ refaudio: 7 }, /^refaudio: must be the name/],
    [{ refaudio: 'bob.wav', reftext: 12 }, /^reftext: must be a string/],
    [{ reftext: 'no audio' }, /^reftext: goes with refaudio/],
  ];
  for (const [extra, re] of refusals) {
    const r = await offer(server, page, extra);
    assert.strictEqual(r.code, -1, JSON.stringify([extra, r]));
    assert.match(r.msg, re);
  }

  const speak = async (extra, text, tts_ = undefined) => {
    const a = await offer(server, page, extra);
    assert.strictEqual(a.code, 0, JSON.stringify(a));
    const from = tts.seen.length;
    const r = (await server.post('/human', { sessionid: a.sessionid, text, ...(tts_ ? { tts: tts_ } : {}) })).json;
    assert.strictEqual(r.code, 0, JSON.stringify(r));
    assert.ok(await until(() => tts.seen.length > from, 10000), 'the TTS server was asked');
    await server.post('/end_session', { sessionid: a.sessionid });
    return tts.seen[from].body;
  };
  const alice = await speak({ refaudio: 'alice.wav' }, 'First words.');
  assert.strictEqual(alice.ref_audio_path, path.join(voices, 'alice.wav'));
  assert.strictEqual(alice.prompt_text, 'Hello, I am Alice.', 'the transcript beside the recording');
  const bob = await speak({ refaudio: 'bob.wav', reftext: 'Bob says "hi" \\ "bye".' }, 'Second words.', { speed: 1.5 });
  assert.strictEqual(bob.ref_audio_path, path.join(voices, 'bob.wav'));
  assert.strictEqual(bob.prompt_text, 'Bob says "hi" \\ "bye".', 'quotes and backslashes arrive as sent');
  assert.strictEqual(bob.speed_factor, 1.5);
  const plain = await speak({}, 'Third words.');
  assert.strictEqual(plain.ref_audio_path, '/srv/default.wav');
  assert.strictEqual(plain.speed_factor, undefined);
  // GPT-SoVITS has no named voices: refused up front, not failed later.
  const a = await offer(server, page);
  const r = (await server.post('/human', { sessionid: a.sessionid, text: 'x', tts: { voice: 'alloy' } })).json;
  assert.match(r.msg, /^tts: gpt-sovits: no named voices/);
});
