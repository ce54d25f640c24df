// SPDX-License-Identifier: LGPL-2.1-or-later
// Starts talker-server (micro models, on loopback) and headless Debian
// chromium for the server tests; stops both when the test ends.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const buildRoot = process.env.TALKER_BUILD_ROOT || path.resolve(__dirname, '../../build');
const micro = (rel) => path.join(buildRoot, 'tools/micro', rel);

// A folder of avatars: "default" (the micro avatar) and "second" (the same).
function avatarsFolder() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'talker-avatars-'));
  fs.symlinkSync(micro('avatar'), path.join(dir, 'default'));
  fs.symlinkSync(micro('avatar'), path.join(dir, 'second'));
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'not an avatar');
  return dir;
}

async function startServer(extra = [], { log = true } = {}) {
  const avatars = avatarsFolder();
  const args = ['--listen', '127.0.0.1:0', '--avatars', avatars,
    '--whisper-model', micro('whisper.safetensors'), '--unet', micro('unet.safetensors'),
    '--unet-config', micro('musetalk.json'), '--vae', micro('vae'),
    '--encoder-latency-ms', '1200', ...extra];
  const env = { ...process.env, GST_PLUGIN_PATH: path.join(buildRoot, 'gst'), OPENBLAS_NUM_THREADS: '1' };
  // TALKER_SERVER: another build of the server (an ASan one, docs/server.md).
  const binary = process.env.TALKER_SERVER || path.join(buildRoot, 'tools/talker-server');
  const proc = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const logFile = path.join(os.tmpdir(), `talker-server-${proc.pid}.log`);
  const out = fs.createWriteStream(logFile);
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('talker-server did not start: ' + lines.join('\n'))), 30000);
    const onData = (chunk) => {
      out.write(chunk);
      for (const line of chunk.toString().split('\n')) {
        if (line) lines.push(line);
        const m = line.match(/listening on https?:\/\/[^:]+:(\d+)\//);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`talker-server exited (${code}): ${lines.join('\n')}`)); });
  });
  if (log) console.log(`# talker-server pid ${proc.pid} on port ${port}, log ${logFile}`);
  const base = `http://127.0.0.1:${port}`;
  return {
    proc, port, base, lines, avatars,
    rssKiB() {
      const status = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      return Number(status.match(/VmRSS:\s+(\d+)/)[1]);
    },
    async post(route, body, headers = {}) {
      const r = await fetch(base + route, {
        method: 'POST', headers: { 'Content-Type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
      return { status: r.status, json, text };
    },
    // multipart/form-data: `fields` as text parts, `file` (bytes) as the part named file.
    async postForm(route, fields, file, filename = 'upload.bin') {
      const form = new FormData();
      for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
      if (file) form.append('file', new Blob([file]), filename);
      const r = await fetch(base + route, { method: 'POST', body: form });
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
      return { status: r.status, json, text };
    },
    async get(route, headers = {}) {
      const r = await fetch(base + route, { headers });
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
      return { status: r.status, json, text };
    },
    async sessions(headers = {}) { return (await this.get('/api/admin/sessions', headers)).json.data.sessions; },
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await new Promise((resolve) => {
        const t = setTimeout(() => { proc.kill('SIGKILL'); resolve(); }, 15000);
        proc.on('exit', () => { clearTimeout(t); resolve(); });
      });
      fs.rmSync(avatars, { recursive: true, force: true });
    },
  };
}

async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required',
      // Host candidates as addresses, not mDNS names (nothing resolves .local here).
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--use-fake-ui-for-media-stream'],
  });
}

// Polls `fn` until it returns a truthy value or `ms` pass.
async function until(fn, ms, step = 100) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, step));
  }
}

// A server and a chromium page opened on it; both stop when test `t` ends.
async function serverAndPage(t, args = []) {
  const server = await startServer(args);
  const browser = await launchBrowser();
  t.after(async () => { await browser.close(); await server.stop(); });
  const page = await browser.newPage();
  await page.goto(server.base + '/');
  return { server, browser, page };
}

// In the page: n more peer connections in window.pcs, each receiving video
// and audio, each with a complete (gathered) offer; returns the offers' SDP.
function makeOffers(page, n) {
  return page.evaluate(async (n) => {
    window.pcs = window.pcs || [];
    const offers = [];
    for (let i = 0; i < n; i++) {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => {
        if (pc.iceGatheringState === 'complete') return r();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
        setTimeout(r, 3000);
      });
      window.pcs.push(pc);
      offers.push(pc.localDescription.sdp);
    }
    return offers;
  }, n);
}

module.exports = { startServer, launchBrowser, serverAndPage, makeOffers, until, buildRoot };
