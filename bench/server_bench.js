// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-server's latencies and throughput, with the micro models on this
// machine and headless chromium as the viewer:
//   1. /human (echo) → the server sends the first speaking frame (its SSE
//      "start" event is sent when the sentence's first audio and first lip
//      frame leave, they share the timeline), and → the first frame with a
//      generated mouth decoded in the browser.
//   2. /human (chat) against an OpenAI-compatible stand-in on loopback (no
//      LLM exists offline) answering 300 ms after the request at 30 tokens/s:
//      → the first sentence's speech sent, and → the first speech sample heard
//      in chromium (an audio onset out of its decoder).
//   3. N concurrent sessions all speaking: the fraction of frames each gets
//      generated (the rest are skipped to hold the timeline).
//   node bench/server_bench.js [--trials 5] [--sessions 1,2,3] [--seconds 12]
'use strict';
const path = require('path');
const { startServer, launchBrowser, makeOffers, until } = require(path.join(__dirname, '../tests/server/harness'));
const { installAvProbe, avOffset, sleep, median } = require(path.join(__dirname, '../tests/server/probes'));
const { llmStandIn } = require(path.join(__dirname, '../tests/server/llm-standin'));

const chatReply = 'Hello there, nice to meet you. I am a talking head, and I answer while the words ' +
  'are still streaming in from the language model, one token after another.';

const arg = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const trials = Number(arg('trials', 5));
const sessionCounts = arg('sessions', '1,2,3').split(',').map(Number);
const seconds = Number(arg('seconds', 12));

// n sessions answered in the page's window.pcs; the first one is shown.
async function connect(server, page, n) {
  await page.evaluate(() => { window.pcs = []; });
  const ids = [];
  for (const [i, sdp] of (await makeOffers(page, n)).entries()) {
    const a = (await server.post('/offer', { sdp, type: 'offer' })).json;
    if (a.code !== 0) throw new Error(a.msg);
    await page.evaluate(([i, a]) => window.pcs[i].setRemoteDescription(a), [i, a]);
    ids.push(a.sessionid);
  }
  await page.evaluate(() => {
    document.querySelector('video').srcObject = new MediaStream(window.pcs[0].getReceivers().map((r) => r.track));
  });
  return ids;
}

async function latency(server, browser, type = 'echo') {
  const page = await browser.newPage();
  await page.goto(server.base + '/');
  const [id] = await connect(server, page, 1);
  await until(() => page.evaluate(() => window.pcs[0].connectionState === 'connected'), 30000);
  await installAvProbe(page);
  await sleep(3000);
  const rows = [];
  for (let i = 0; i < trials; i++) {
    const idleStart = await page.evaluate(() => performance.now());
    await sleep(1500);
    // /human sent from the page, its SSE stream read there: one clock for all.
    const r = await page.evaluate(async ([id, type]) => {
      const ctrl = new AbortController();
      const events = fetch('/sse?sessionid=' + id, { signal: ctrl.signal }).then(async (res) => {
        const reader = res.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return null;
          if (new TextDecoder().decode(value).includes('"status":"start"')) return performance.now();
        }
      });
      await new Promise((r) => setTimeout(r, 300));  // the stream is open
      const sent = performance.now();
      await fetch('/human', { method: 'POST', body: JSON.stringify({ sessionid: id, text: 'Hello there, how are you today?', type }) });
      const started = await events;
      ctrl.abort();
      return { sent, started };
    }, [id, type]);
    await sleep(3500);
    const { mouth: firstMouth, onset } = await avOffset(page, idleStart, idleStart + 1500, r.sent);
    rows.push({ sse: r.started - r.sent, browser: firstMouth ? firstMouth - r.sent : NaN, heard: onset ? onset - r.sent : NaN });
    // Let the reply finish: the next trial starts from the idle face.
    await until(async () => !(await server.post('/is_speaking', { sessionid: id })).json.data, 20000, 200);
    await sleep(1500);
  }
  const latency = (await server.sessions())[0].latency_ms;
  await page.close();
  return { rows, latency };
}

async function throughput(server, browser, n) {
  const page = await browser.newPage();
  await page.goto(server.base + '/');
  const ids = await connect(server, page, n);
  await until(() => page.evaluate(() => window.pcs.every((pc) => pc.connectionState === 'connected')), 60000);
  await sleep(3000);
  const text = 'This is a long text that keeps the avatar speaking for the whole measurement. '.repeat(8);
  for (const id of ids) await server.post('/human', { sessionid: id, text, type: 'echo' });
  await sleep(4000);  // speech reaches the models
  const before = await server.sessions();
  await sleep(seconds * 1000);
  const after = await server.sessions();
  const perSession = ids.map((id) => {
    const a = before.find((s) => s.sessionid === id), b = after.find((s) => s.sessionid === id);
    const gen = b.frames_generated - a.frames_generated, skip = b.frames_skipped - a.frames_skipped;
    return { gen, skip, ratio: gen / Math.max(1, gen + skip) };
  });
  await page.evaluate(() => window.pcs.forEach((pc) => pc.close()));
  await until(async () => (await server.get('/api/admin/sessions')).json.data.sessions.length === 0, 30000, 200);
  await page.close();
  return perSession;
}

(async () => {
  const llm = await llmStandIn(null, [{ tokens: chatReply.split(/(?<= )/) }], { firstTokenMs: 300, tokensPerSecond: 30 });
  const server = await startServer(['--max-sessions', String(Math.max(...sessionCounts)), '--peer-timeout', '2',
    '--llm-url', llm.url, '--llm-model', 'stand-in'], { log: false });
  const browser = await launchBrowser();
  const table = (rows) => {
    console.log('trial  ->first speaking frame sent  ->first generated mouth decoded  ->first speech heard (ms)');
    const row = (label, r) => console.log(`${label.padStart(6)}  ${r.sse.toFixed(0).padStart(26)}  ${r.browser.toFixed(0).padStart(30)}  ${r.heard.toFixed(0).padStart(23)}`);
    rows.forEach((r, i) => row(String(i + 1), r));
    row('median', { sse: median(rows.map((r) => r.sse)), browser: median(rows.map((r) => r.browser)), heard: median(rows.map((r) => r.heard)) });
  };
  try {
    const { rows, latency: l } = await latency(server, browser);
    console.log(`talker-server, micro models, ${require('os').cpus().length} CPUs; session latency (talking head) ${l.toFixed(0)} ms`);
    console.log('\n/human type:echo');
    table(rows);
    const chat = await latency(server, browser, 'chat');
    const sentence = chatReply.split(/(?<= )/).findIndex((w) => /[.!?,]\s*$/.test(w));
    const seen = llm.seen.filter((q) => q.tokenTimes && q.tokenTimes.length > sentence);
    const firstClause = median(seen.map((q) => q.tokenTimes[sentence] - q.at));
    console.log(`\n/human type:chat, LLM stand-in: first token 300 ms after the request, 30 tokens/s; ` +
      `the first clause complete ${firstClause.toFixed(0)} ms after the request (median)`);
    table(chat.rows);
    console.log(`\nconcurrent sessions, all speaking, ${seconds} s: frames generated / (generated + skipped)`);
    for (const n of sessionCounts) {
      const per = await throughput(server, browser, n);
      console.log(`${n} session(s): ${per.map((p) => `${(100 * p.ratio).toFixed(0)}% (${p.gen}/${p.gen + p.skip})`).join('  ')}`);
    }
  } finally {
    await browser.close();
    await server.stop();
    llm.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
