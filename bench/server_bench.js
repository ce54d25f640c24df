// SPDX-License-Identifier: LGPL-2.1-or-later
// talker-server's latencies and throughput, with the micro models on this
// machine and headless chromium as the viewer:
//   1. /human (echo) → the server sends the first speaking frame (its SSE
//      "start" event is sent when the sentence's first audio and first lip
//      frame leave, they share the timeline), and → the first frame with a
//      generated mouth decoded in the browser.
//   2. N concurrent sessions all speaking: the fraction of frames each gets
//      generated (the rest are skipped to hold the timeline).
//   node bench/server_bench.js [--trials 5] [--sessions 1,2,3] [--seconds 12]
'use strict';
const path = require('path');
const { startServer, launchBrowser, until } = require(path.join(__dirname, '../tests/server/harness'));
const { installSampler, sleep, median } = require(path.join(__dirname, '../tests/server/probes'));

const arg = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const trials = Number(arg('trials', 5));
const sessionCounts = arg('sessions', '1,2,3').split(',').map(Number);
const seconds = Number(arg('seconds', 12));

async function connect(page, n) {
  await page.goto(page.url());
  return page.evaluate(async (n) => {
    window.pcs = [];
    const ids = [];
    for (let i = 0; i < n; i++) {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 3000); });
      const a = await (await fetch('/offer', { method: 'POST', body: JSON.stringify({ sdp: pc.localDescription.sdp, type: 'offer' }) })).json();
      if (a.code !== 0) throw new Error(a.msg);
      await pc.setRemoteDescription(a);
      window.pcs.push(pc);
      ids.push(a.sessionid);
    }
    const v = document.querySelector('video');
    v.srcObject = new MediaStream(window.pcs[0].getReceivers().map((r) => r.track));
    return ids;
  }, n);
}

async function latency(server, browser) {
  const page = await browser.newPage();
  await page.goto(server.base + '/');
  const [id] = await connect(page, 1);
  await until(() => page.evaluate(() => window.pcs[0].connectionState === 'connected'), 30000);
  await installSampler(page);
  await sleep(3000);
  const rows = [];
  for (let i = 0; i < trials; i++) {
    const idleStart = await page.evaluate(() => performance.now());
    await sleep(1500);
    // /human sent from the page, its SSE stream read there: one clock for all.
    const r = await page.evaluate(async (id) => {
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
      await fetch('/human', { method: 'POST', body: JSON.stringify({ sessionid: id, text: 'Hello there, how are you today?', type: 'echo' }) });
      const started = await events;
      ctrl.abort();
      return { sent, started };
    }, id);
    await sleep(3500);
    const firstMouth = await page.evaluate(([a, b, sent]) => {
      const idle = window.frameSamples.filter((s) => s.t >= a && s.t <= b);
      const mad = (x, y) => { let d = 0; for (let i = 0; i < x.length; i++) d += Math.abs(x[i] - y[i]); return d / x.length; };
      const f = window.frameSamples.find((s) => s.t > sent && Math.min(...idle.map((r) => mad(r.grey, s.grey))) > 4);
      return f ? f.t : null;
    }, [idleStart, idleStart + 1500, r.sent]);
    rows.push({ sse: r.started - r.sent, browser: firstMouth ? firstMouth - r.sent : NaN });
    await sleep(1500);
  }
  const latency = (await server.sessions())[0].latency_ms;
  await page.close();
  return { rows, latency };
}

async function throughput(server, browser, n) {
  const page = await browser.newPage();
  await page.goto(server.base + '/');
  const ids = await connect(page, n);
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
  const server = await startServer(['--max-sessions', String(Math.max(...sessionCounts)), '--peer-timeout', '2'], { log: false });
  const browser = await launchBrowser();
  try {
    const { rows, latency: l } = await latency(server, browser);
    console.log(`talker-server, micro models, ${require('os').cpus().length} CPUs; session latency (talking head) ${l.toFixed(0)} ms`);
    console.log('trial  /human->first speaking frame sent (ms)  /human->first generated frame decoded in chromium (ms)');
    rows.forEach((r, i) => console.log(`${String(i + 1).padStart(5)}  ${r.sse.toFixed(0).padStart(38)}  ${r.browser.toFixed(0).padStart(54)}`));
    console.log(`median ${median(rows.map((r) => r.sse)).toFixed(0).padStart(38)}  ${median(rows.map((r) => r.browser)).toFixed(0).padStart(54)}`);
    console.log(`\nconcurrent sessions, all speaking, ${seconds} s: frames generated / (generated + skipped)`);
    for (const n of sessionCounts) {
      const per = await throughput(server, browser, n);
      console.log(`${n} session(s): ${per.map((p) => `${(100 * p.ratio).toFixed(0)}% (${p.gen}/${p.gen + p.skip})`).join('  ')}`);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
})().catch((e) => { console.error(e); process.exit(1); });
