// SPDX-License-Identifier: LGPL-2.1-or-later
// Many sessions: the limit holds under a burst of concurrent offers, slots
// come back when the peers leave, and a server that has served 20 sessions
// one after another uses the memory it used after the first.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { serverAndPage, makeOffers, until } = require('./harness');
const { sleep } = require('./probes');

const answerIn = (page, i, sdp) => page.evaluate(([i, sdp]) => window.pcs[i].setRemoteDescription({ type: 'answer', sdp }), [i, sdp]);
const stateOf = (page, i) => page.evaluate((i) => window.pcs[i].connectionState, i);
const framesOf = (page, i) => page.evaluate(async (i) => {
  let f = 0;
  (await window.pcs[i].getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') f = s.framesDecoded; });
  return f;
}, i);

async function allGone(server) {
  return until(async () => {
    const d = (await server.get('/api/admin/sessions')).json.data;
    return d.sessions.length === 0 && d.stopping === 0 && d.starting === 0;
  }, 30000, 200);
}

test('max-sessions 3: 20 concurrent offers, 3 answers; slots return when peers leave', async (t) => {
  const { server, page } = await serverAndPage(t, ['--max-sessions', '3', '--peer-timeout', '2']);
  const offers = await makeOffers(page, 20);
  const replies = await Promise.all(offers.map((sdp) => server.post('/offer', { sdp, type: 'offer' })));
  const accepted = replies.map((r, i) => [r, i]).filter(([r]) => r.json.code === 0);
  const refused = replies.filter((r) => r.json.code === -1);
  assert.strictEqual(accepted.length, 3, 'exactly 3 answers');
  assert.strictEqual(refused.length, 17);
  for (const r of refused) {
    assert.strictEqual(r.status, 200);
    assert.match(r.json.msg, /max sessions reached \(3\)/);
  }
  assert.strictEqual(new Set(accepted.map(([r]) => r.json.sessionid)).size, 3, 'distinct ids');
  for (const [r, i] of accepted) await answerIn(page, i, r.json.sdp);
  for (const [, i] of accepted) assert.ok(await until(async () => (await stateOf(page, i)) === 'connected', 30000), `peer ${i} connected`);
  assert.strictEqual((await server.sessions()).length, 3);
  assert.strictEqual((await server.get('/readyz')).status, 503, 'not ready at max sessions');
  // The peers leave; their sessions end and a new offer is accepted at once.
  const leftAt = Date.now();
  await page.evaluate(() => window.pcs.forEach((pc) => pc.close()));
  assert.ok(await allGone(server), 'sessions freed after the peers left');
  console.log(`# 3 sessions freed ${Date.now() - leftAt} ms after their peers closed`);
  assert.strictEqual((await server.get('/readyz')).status, 200, 'ready again');
  await page.evaluate(() => { window.pcs = []; });
  const [again] = await makeOffers(page, 1);
  const r = await server.post('/offer', { sdp: again, type: 'offer' });
  assert.strictEqual(r.json.code, 0, JSON.stringify(r.json));
});

test('sessions one after another: memory returns to its level after the first', async (t) => {
  const { server, page } = await serverAndPage(t, ['--max-sessions', '2', '--peer-timeout', '2']);
  const rss = [];
  const count = Number(process.env.TALKER_SESSIONS || 20);
  for (let n = 0; n < count; n++) {
    await page.evaluate(() => { window.pcs = []; });
    const [sdp] = await makeOffers(page, 1);
    const r = await server.post('/offer', { sdp, type: 'offer' });
    assert.strictEqual(r.json.code, 0, `session ${n + 1}: ` + JSON.stringify(r.json));
    await answerIn(page, 0, r.json.sdp);
    assert.ok(await until(async () => (await framesOf(page, 0)) > 10, 30000), `session ${n + 1} decodes video`);
    // Something said in each, so every session runs its models.
    await server.post('/human', { sessionid: r.json.sessionid, text: 'Hello.', type: 'echo' });
    await sleep(1500);
    await page.evaluate(() => window.pcs[0].close());
    assert.ok(await allGone(server), `session ${n + 1} freed`);
    await sleep(1000);  // threads that outlive the pipeline (libnice's) exit
    rss.push(server.rssKiB());
  }
  const first = rss[0], last = rss[rss.length - 1];
  console.log(`# RSS after each session (MiB): ${rss.map((k) => (k / 1024).toFixed(0)).join(' ')}`);
  console.log(`# RSS after 20 sessions / after the first: ${(last / first).toFixed(3)}`);
  assert.ok(last <= first * 1.05, `RSS ${last} KiB after 20 sessions vs ${first} KiB after the first`);
});

test('sessions end by themselves: never connected, idle', async (t) => {
  const { server, page } = await serverAndPage(t, ['--connect-timeout', '3', '--idle-timeout', '4', '--peer-timeout', '2']);
  // An answer the browser never applies: ICE never starts.
  const [lost, idle] = await makeOffers(page, 2);
  const r1 = await server.post('/offer', { sdp: lost, type: 'offer' });
  assert.strictEqual(r1.json.code, 0);
  const t1 = Date.now();
  assert.ok(await allGone(server), 'the unconnected session ended');
  const lostAfter = Date.now() - t1;
  // A connected session nobody talks to.
  const r2 = await server.post('/offer', { sdp: idle, type: 'offer' });
  await answerIn(page, 1, r2.json.sdp);
  assert.ok(await until(async () => (await stateOf(page, 1)) === 'connected', 30000));
  const t2 = Date.now();
  // API requests keep it alive...
  for (let i = 0; i < 6; i++) {
    await sleep(1000);
    assert.strictEqual((await server.post('/is_speaking', { sessionid: r2.json.sessionid })).json.code, 0, 'alive while used');
  }
  // ...and without them it ends.
  const t3 = Date.now();
  assert.ok(await allGone(server), 'the idle session ended');
  const idleAfter = Date.now() - t3;
  console.log(`# never connected: ended after ${lostAfter} ms (--connect-timeout 3); idle: ${idleAfter} ms after the last request (--idle-timeout 4), ${t3 - t2} ms of use`);
  assert.ok(lostAfter < 3000 + 3000 && idleAfter >= 3000 && idleAfter < 4000 + 3000);
  assert.ok(server.lines.some((l) => /ended: not connected within 3 s/.test(l)));
  assert.ok(server.lines.some((l) => /ended: idle for 4 s/.test(l)));
});

test('--ice-ports, --public-ip and --stun reach the answer and the network', async (t) => {
  const dgram = require('dgram');
  const stun = dgram.createSocket('udp4');
  const requests = [];
  stun.on('message', (m) => requests.push(m));
  await new Promise((r) => stun.bind(0, '127.0.0.1', r));
  t.after(() => stun.close());
  const { server, page } = await serverAndPage(t, ['--ice-ports', '41000-41009', '--public-ip', '198.51.100.7',
    '--stun', `stun://127.0.0.1:${stun.address().port}`]);
  const [sdp] = await makeOffers(page, 1);
  const r = await server.post('/offer', { sdp, type: 'offer' });
  assert.strictEqual(r.json.code, 0, JSON.stringify(r.json));
  const candidates = r.json.sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
  const udpHost = candidates.filter((l) => / udp /i.test(l) && / typ host/.test(l));
  assert.ok(udpHost.length >= 2, candidates.join('\n'));
  for (const c of udpHost) {
    const port = Number(c.split(' ')[5]);
    assert.ok(port >= 41000 && port <= 41009, `port ${port} in --ice-ports: ${c}`);
  }
  assert.ok(udpHost.some((c) => c.split(' ')[4] === '198.51.100.7'), 'a candidate at --public-ip');
  assert.ok(udpHost.some((c) => c.split(' ')[4] === '127.0.0.1'), 'loopback among the host candidates');
  // STUN Binding Requests (type 0x0001, magic cookie 0x2112A442) reached our socket.
  assert.ok(await until(() => requests.some((m) => m.length >= 20 && m.readUInt16BE(0) === 1 && m.readUInt32BE(4) === 0x2112a442), 5000),
    `STUN requests: ${requests.length}`);
  // And the browser still connects (the public copy is unreachable here, loopback is not).
  await answerIn(page, 0, r.json.sdp);
  assert.ok(await until(async () => (await stateOf(page, 0)) === 'connected', 30000));
});
