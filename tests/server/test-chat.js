// SPDX-License-Identifier: LGPL-2.1-or-later
// /human type:chat against an OpenAI-compatible server. No LLM exists
// offline: the test starts a stand-in on loopback that streams a fixed reply
// as server-sent events at a set pace (300 ms to the first token, 30 tokens/s),
// records what it was sent, and notices when the client goes away.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { serverAndPage, makeOffers, until } = require('./harness');
const { llmStandIn } = require('./llm-standin');
const { installAvProbe, distances, sleep } = require('./probes');

const words = (text) => text.split(/(?<= )/);

async function session(server, page) {
  const [sdp] = await makeOffers(page, 1);
  const a = (await server.post('/offer', { sdp, type: 'offer' })).json;
  assert.strictEqual(a.code, 0, JSON.stringify(a));
  await page.evaluate((a) => window.pcs[0].setRemoteDescription(a), a);
  assert.ok(await until(() => page.evaluate(() => window.pcs[0].connectionState === 'connected'), 30000));
  const events = [];
  const ctrl = new AbortController();
  const r = await fetch(`${server.base}/sse?sessionid=${a.sessionid}`, { signal: ctrl.signal });
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of r.body)
      for (const line of decoder.decode(chunk).split('\n'))
        if (line.startsWith('data: ')) events.push({ ...JSON.parse(line.slice(6)), at: Date.now() });
  })().catch(() => {});
  return { id: a.sessionid, events, close: () => ctrl.abort() };
}

test('chat: speech starts after the first sentence, Markdown never spoken, history sent, interrupt closes the request', async (t) => {
  const first = '**Hello** there my friend. This is the *second* sentence of a rather long reply 🎉 ' +
    'and it goes on with more words so that streaming it takes well over two seconds at thirty tokens each second. ' +
    'Here are more words to make it longer still. '.repeat(5) + 'The end is here.';
  const long = 'I will talk for a long time now. ' + 'And on and on I go with more and more words to say. '.repeat(40);
  const llm = await llmStandIn(t, [{ tokens: words(first) }, { tokens: words(long) }, { status: 500 }]);
  const { server, page } = await serverAndPage(t, ['--llm-url', llm.url, '--llm-model', 'stand-in',
    '--system-prompt', 'You are a talking head.', '--llm-key-env', 'TALKER_TEST_LLM_KEY']);
  const s = await session(server, page);
  t.after(() => s.close());
  const latency = (await server.sessions())[0].latency_ms;
  // What chromium plays: the idle face first, for reference.
  await page.evaluate(() => {
    document.querySelector('video').srcObject = new MediaStream(window.pcs[0].getReceivers().map((r) => r.track));
  });
  await installAvProbe(page);
  const idleStart = await page.evaluate(() => performance.now());
  await sleep(2000);
  const idleEnd = await page.evaluate(() => performance.now());

  // 1. The reply is spoken as it streams.
  const asked = Date.now();
  assert.strictEqual((await server.post('/human', { sessionid: s.id, text: 'Hi', type: 'chat' })).json.code, 0);
  assert.ok(await until(() => s.events.some((e) => e.status === 'start'), 15000), 'speech starts');
  const firstStart = s.events.find((e) => e.status === 'start').at - asked;
  const streamingTakes = 300 + words(first).length * 1000 / 30;
  console.log(`# chat: first sentence heard ${firstStart} ms after /human (latency ${latency.toFixed(0)} ms; the reply streams for ${streamingTakes.toFixed(0)} ms)`);
  // The first sentence is in after ~450 ms, the whole reply after ~3.3 s.
  assert.ok(streamingTakes > 3000 && firstStart < 300 + 500 + latency + 700, 'speech starts after the first sentence, not the whole reply');
  assert.ok(await until(() => s.events.some((e) => e.status === 'end' && e.text === 'The end is here.'), 30000),
    'the whole reply is spoken');
  // What was said has no Markdown or emoji; the subtitles keep the reply as written.
  const starts = s.events.filter((e) => e.status === 'start');
  const spoken = starts.map((e) => e.spoken || e.text), subtitles = starts.map((e) => e.text);
  for (const text of spoken) assert.ok(!/[*#`]|\u{1F389}/u.test(text), `no Markdown or emoji spoken: ${text}`);
  assert.strictEqual(spoken.join(' ').replace(/\s+/g, ' '), first.replace(/\*|🎉 /gu, '').replace(/\s+/g, ' ').trim());
  assert.strictEqual(subtitles.join(' ').replace(/\s+/g, ' '), first.replace(/\s+/g, ' ').trim());
  assert.ok(subtitles[0].startsWith('**Hello**') && subtitles.some((x) => x.includes('🎉')), subtitles.join(' | '));

  // 2. The next request carries the first turn; interrupt cuts it and closes the connection.
  const before = s.events.length;
  await server.post('/human', { sessionid: String(s.id), text: 'Tell me more', type: 'chat' });
  assert.ok(await until(() => s.events.slice(before).some((e) => e.status === 'start'), 15000));
  const second = llm.seen[1].body;
  assert.deepStrictEqual(second.messages.map((m) => m.role), ['system', 'user', 'assistant', 'user']);
  assert.strictEqual(second.messages[2].content, first);
  assert.strictEqual(second.model, 'stand-in');
  assert.strictEqual(llm.seen[1].auth, undefined, 'no key in the environment: no Authorization');
  const cutAt = Date.now();
  const cutInPage = await page.evaluate(() => performance.now());
  assert.strictEqual((await server.post('/interrupt_talk', { sessionid: s.id })).json.code, 0);
  assert.ok(await until(() => llm.seen[1].closedEarly, 2000), 'the LLM request was closed, not read to the end');
  console.log(`# interrupt: LLM connection closed ${llm.seen[1].closedAt - cutAt} ms after /interrupt_talk`);
  assert.ok(await until(async () => (await server.post('/is_speaking', { sessionid: s.id })).json.data === false, latency + 1500),
    'silence within the latency');
  const ended = s.events.slice(before).filter((e) => e.status === 'end');
  const heard = s.events.slice(before).filter((e) => e.status === 'start').length;
  // The sentence being spoken at the source when the cut came ends
  // "interrupted". On a loaded machine (latency several seconds, a slow TTS)
  // the cut may fall between sentences: then what was heard ended normally
  // and the rest of the reply (41 sentences) was never heard at all.
  assert.ok(ended.some((e) => e.reason === 'interrupted') ||
    (heard < 41 && ended.length === heard && ended.every((e) => e.reason === 'finished')), JSON.stringify(ended));
  // At chromium: the last speech sample, and the last frame whose mouth is
  // not an idle one, come one latency after the interrupt (the live path:
  // what was in flight plays out), the face one batch and the transition later.
  await sleep(1500);
  const lastLoud = await page.evaluate(() => window.avLastLoud);
  const moving = (await distances(page, idleStart, idleEnd)).filter((x) => x.d > 4);
  const lastFace = moving.length ? moving[moving.length - 1].t : cutInPage;
  console.log(`# interrupt at chromium: last speech ${(lastLoud - cutInPage).toFixed(0)} ms, ` +
    `last non-idle mouth ${(lastFace - cutInPage).toFixed(0)} ms after /interrupt_talk (latency ${latency.toFixed(0)} ms)`);
  assert.ok(lastLoud - cutInPage < latency + 400, 'silence within the latency (+ the browser\'s jitter buffer)');
  assert.ok(lastFace - cutInPage < latency + 160 + 200 + 400, 'the idle face within the latency, a batch and the transition');

  // 3. A failing LLM: a warning on the event stream, the session goes on.
  const mark = s.events.length;
  await server.post('/human', { sessionid: s.id, text: 'And now?', type: 'chat' });
  assert.ok(await until(() => s.events.slice(mark).some((e) => e.status === 'warning'), 10000), 'warning event');
  assert.match(s.events.slice(mark).find((e) => e.status === 'warning').text, /HTTP 500/);
  assert.deepStrictEqual(llm.seen[2].body.messages.slice(-2).map((m) => m.role), ['assistant', 'user']);
  assert.match(llm.seen[2].body.messages.at(-2).content, /\[cut off\]$/);
  await server.post('/human', { sessionid: s.id, text: 'Still here.', type: 'echo' });
  assert.ok(await until(() => s.events.slice(mark).some((e) => e.status === 'start' && e.text === 'Still here.'), 10000));
});
