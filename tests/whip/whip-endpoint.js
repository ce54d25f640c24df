// SPDX-License-Identifier: LGPL-2.1-or-later
// A WHIP endpoint for tests, on 127.0.0.1. Its media side is a real,
// independent WebRTC stack: headless Debian chromium (driven by
// playwright-core), one RTCPeerConnection per session, which decodes what
// arrives and times white flashes and audio beeps as they come out of its
// jitter buffers. Its HTTP side relays SDP and can be told to misbehave
// through /control. Prints "READY <port>" when listening.
//
//   node whip-endpoint.js [--port N]
//   POST   /whip/...              the endpoint (answers per the current mode)
//   OPTIONS/whip/...              Link ice-servers when configured
//   DELETE .../resource/<id>      ends a session
//   POST   /control               JSON: {status, retryAfter, times, redirect, location, links}
//   GET    /control/requests      what the endpoint was sent (method, path, authorization)
//   GET    /control/sessions      per session: state, decoded frames/samples, flash/beep times
//   POST   /control/vanish        closes every peer connection without telling the client
//   POST   /control/freeze        JSON {ms}: stops the browser process (SIGSTOP) for ms: the
//                                 peer goes silent without closing anything
//   POST   /control/whep          JSON {url}: plays url as a WHEP viewer (the page offers,
//                                 the server at url answers); answers {id}; the viewer is
//                                 one more entry in /control/sessions
'use strict';
const http = require('http');
const { chromium } = require('playwright-core');

const args = process.argv.slice(2);
const port = args.includes('--port') ? Number(args[args.indexOf('--port') + 1]) : 0;
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

// What the page runs: one receiving peer connection per session.
const pageScript = `
window.sessions = {};
// Decodes what arrives on pc and times flashes and beeps as they come out.
window.watch = (id, pc) => {
  const s = { pc, flashes: [], beeps: [], frames: 0, audioChunks: 0, streams: [], width: 0, height: 0 };
  window.sessions[id] = s;
  const media = document.createElement('video');
  media.muted = true; media.autoplay = true; document.body.appendChild(media);
  pc.ontrack = (e) => {
    for (const st of e.streams) if (!s.streams.includes(st.id)) s.streams.push(st.id);
    if (e.streams[0]) media.srcObject = e.streams[0];
    const reader = new MediaStreamTrackProcessor({ track: e.track }).readable.getReader();
    if (e.track.kind === 'video') {
      const canvas = new OffscreenCanvas(8, 8);
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      let bright = false;
      (async () => { for (;;) {
        const { value: frame, done } = await reader.read(); if (done) return;
        const t = performance.now();
        s.frames++; s.width = frame.displayWidth; s.height = frame.displayHeight;
        ctx.drawImage(frame, 0, 0, 8, 8);
        const px = ctx.getImageData(0, 0, 8, 8).data;
        let sum = 0; for (let i = 0; i < px.length; i += 4) sum += px[i];
        const now = sum / 64 > 128;
        if (now && !bright) s.flashes.push(t);
        bright = now; frame.close();
      } })();
    } else {
      let quietSamples = 1e9;
      (async () => { for (;;) {
        const { value: data, done } = await reader.read(); if (done) return;
        const t = performance.now();
        s.audioChunks++;
        const n = data.numberOfFrames, rate = data.sampleRate;
        const buf = new Float32Array(n);
        data.copyTo(buf, { planeIndex: 0, format: 'f32-planar' });
        for (let i = 0; i < n; i++) {
          if (Math.abs(buf[i]) > 0.05) {
            if (quietSamples > rate * 0.3) s.beeps.push(t - (n - i) * 1000 / rate);
            quietSamples = 0;
          } else quietSamples++;
        }
        data.close();
      } })();
    }
  };
};
const gathered = (pc) => new Promise((r) => {
  if (pc.iceGatheringState === 'complete') return r();
  pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
  setTimeout(r, 2000);
});
// A WHIP session: the client offers, this page answers.
window.openSession = async (id, offer) => {
  const pc = new RTCPeerConnection();
  window.watch(id, pc);
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  return pc.localDescription.sdp;
};
// A WHEP viewer: this page offers to receive one video and one audio track.
window.offerViewer = async (id) => {
  const pc = new RTCPeerConnection();
  window.watch(id, pc);
  const stream = new MediaStream();
  pc.addTransceiver('audio', { direction: 'recvonly', streams: [stream] });
  pc.addTransceiver('video', { direction: 'recvonly', streams: [stream] });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return pc.localDescription.sdp;
};
window.answerViewer = async (id, answer) => {
  await window.sessions[id].pc.setRemoteDescription({ type: 'answer', sdp: answer });
};
window.closeSession = (id) => { const s = window.sessions[id]; if (s) s.pc.close(); };
window.report = async () => {
  const out = [];
  for (const [id, s] of Object.entries(window.sessions)) {
    const r = { id, state: s.pc.connectionState, frames: s.frames, audioChunks: s.audioChunks,
                streams: s.streams, width: s.width, height: s.height,
                flashes: s.flashes, beeps: s.beeps, framesDecoded: 0, audioSamples: 0, codecs: [] };
    if (s.pc.connectionState !== 'closed') {
      const stats = await s.pc.getStats();
      stats.forEach((x) => {
        if (x.type === 'inbound-rtp' && x.kind === 'video') r.framesDecoded = x.framesDecoded;
        if (x.type === 'inbound-rtp' && x.kind === 'audio') r.audioSamples = x.totalSamplesReceived;
        if (x.type === 'codec') r.codecs.push(x.mimeType);
      });
    }
    out.push(r);
  }
  return out;
};
`;

// POSTs an SDP offer (WHEP), resolves to {status, body}.
function postSdp(target, sdp) {
  return new Promise((resolve, reject) => {
    const req = http.request(target, { method: 'POST', headers: { 'Content-Type': 'application/sdp' } }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('WHEP server did not answer in 10 s')));
    req.end(sdp);
  });
}

// The browser's main process: our child named chromium (playwright's Browser
// does not say).
function browserPid() {
  const fs = require('fs');
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid && stat.includes('(chromium')) return Number(entry);
    } catch (e) { /* gone meanwhile */ }
  }
  throw new Error('no chromium child');
}

async function main() {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-features=WebRtcHideLocalIpsWithMdns', '--disable-crash-reporter',
           '--disable-breakpad',
           '--autoplay-policy=no-user-gesture-required'],
  });
  const page = await browser.newPage();
  await page.setContent('<html><body></body></html>');
  await page.addScriptTag({ content: pageScript });

  let mode = {};
  let nextId = 1;
  const requests = [];
  const live = new Set();

  const server = http.createServer(async (req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; if (body.length > 1e6) req.destroy(); });
    await new Promise((r) => req.on('end', r));
    const url = new URL(req.url, 'http://127.0.0.1');
    const send = (status, headers, text) => { res.writeHead(status, headers); res.end(text || ''); };
    try {
      if (url.pathname.startsWith('/control')) {
        if (req.method === 'POST' && url.pathname === '/control') { mode = JSON.parse(body || '{}'); return send(200, {}, 'ok'); }
        if (url.pathname === '/control/requests') return send(200, { 'Content-Type': 'application/json' }, JSON.stringify(requests));
        if (url.pathname === '/control/sessions') return send(200, { 'Content-Type': 'application/json' }, JSON.stringify(await page.evaluate(() => window.report())));
        if (url.pathname === '/control/vanish') {
          for (const id of live) await page.evaluate((i) => window.closeSession(i), id);
          live.clear();
          return send(200, {}, 'ok');
        }
        if (url.pathname === '/control/freeze') {
          // The whole browser: WebRTC runs in its renderer, not in the main process.
          // playwright starts it as a process group of its own.
          const group = -browserPid();
          process.kill(group, 'SIGSTOP');
          setTimeout(() => process.kill(group, 'SIGCONT'), JSON.parse(body || '{}').ms || 3000);
          return send(200, {}, 'ok');
        }
        if (req.method === 'POST' && url.pathname === '/control/whep') {
          const id = 'whep-' + nextId++;
          const offer = await page.evaluate((i) => window.offerViewer(i), id);
          const answer = await postSdp(JSON.parse(body).url, offer);
          if (answer.status !== 201 && answer.status !== 200)
            return send(502, {}, `WHEP server answered ${answer.status}: ${answer.body}`);
          await page.evaluate(([i, a]) => window.answerViewer(i, a), [id, answer.body]);
          return send(200, { 'Content-Type': 'application/json' }, JSON.stringify({ id }));
        }
        if (url.pathname === '/control/quit') { send(200, {}, 'bye'); await browser.close(); process.exit(0); }
        return send(404, {}, 'no such control');
      }
      requests.push({ method: req.method, path: req.url, authorization: req.headers.authorization || null,
                      contentType: req.headers['content-type'] || null, t: Date.now() });
      const links = mode.links ? { Link: mode.links } : {};
      if (req.method === 'OPTIONS') return send(204, links);
      const resource = url.pathname.match(/\/resource\/(\d+)$/);
      if (req.method === 'DELETE' && resource) {
        const id = resource[1];
        if (!live.has(id)) return send(404, {}, 'no such session');
        live.delete(id);
        await page.evaluate((i) => window.closeSession(i), id);
        return send(200, {});
      }
      if (req.method !== 'POST' || !url.pathname.startsWith('/whip') && !url.pathname.startsWith('/moved'))
        return send(405, {}, 'not a WHIP request');
      if (mode.times !== undefined && mode.times <= 0) mode = {};
      if (mode.status) {
        if (mode.times !== undefined) mode.times--;
        const h = mode.retryAfter !== undefined ? { 'Retry-After': String(mode.retryAfter) } : {};
        return send(mode.status, h, mode.body || `refused by the test endpoint (${mode.status})`);
      }
      if (mode.redirect && url.pathname.startsWith('/whip'))
        return send(307, { Location: '/moved' + url.pathname + url.search });
      if (req.headers['content-type'] !== 'application/sdp') return send(415, {}, 'application/sdp only');
      const id = String(nextId++);
      const answer = await page.evaluate(([i, o]) => window.openSession(i, o), [id, body]);
      live.add(id);
      // Relative by default: the client must resolve it against the URL that answered.
      const location = mode.location === 'absolute' ? `http://127.0.0.1:${server.address().port}/resource/${id}` : `resource/${id}`;
      return send(201, { 'Content-Type': 'application/sdp', Location: location, ...links }, answer);
    } catch (e) {
      return send(500, {}, String(e));
    }
  });
  server.listen(port, '127.0.0.1', () => console.log(`READY ${server.address().port}`));
}

main().catch((e) => { console.error(e); process.exit(1); });
