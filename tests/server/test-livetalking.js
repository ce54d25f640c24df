// SPDX-License-Identifier: LGPL-2.1-or-later
// The API as LiveTalking's own pages speak it (web/client.js and
// webrtcapi.html): two recvonly transceivers, video first; the offer POSTed
// as {sdp, type} only, after ICE gathering completed; tracks taken from
// evt.streams[0]; the session id read back from a text field, so /human gets
// it as a string and /is_speaking as parseInt() of it.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { serverAndPage, until } = require('./harness');
const { inbound, sleep } = require('./probes');

test('a LiveTalking page against talker-server', async (t) => {
  const { server, page } = await serverAndPage(t);
  // LiveTalking's negotiate(), as in its client.js.
  const negotiated = await page.evaluate(async () => {
    document.body.insertAdjacentHTML('beforeend',
      '<input id="sessionid" value="0"><video id="lt-video" autoplay playsinline></video><audio id="lt-audio" autoplay></audio>');
    const pc = window.ltpc = new RTCPeerConnection({ sdpSemantics: 'unified-plan' });
    const tracks = [];
    pc.addEventListener('track', (evt) => {
      tracks.push({ kind: evt.track.kind, hasStream: !!evt.streams[0] });
      if (evt.track.kind == 'video') document.getElementById('lt-video').srcObject = evt.streams[0];
      else document.getElementById('lt-audio').srcObject = evt.streams[0];
    });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') resolve();
      else {
        function checkState() {
          if (pc.iceGatheringState === 'complete') { pc.removeEventListener('icegatheringstatechange', checkState); resolve(); }
        }
        pc.addEventListener('icegatheringstatechange', checkState);
      }
    });
    const offer = pc.localDescription;
    const response = await fetch('/offer', {
      body: JSON.stringify({ sdp: offer.sdp, type: offer.type }),
      headers: { 'Content-Type': 'application/json' }, method: 'POST',
    });
    const answer = await response.json();
    document.getElementById('sessionid').value = answer.sessionid;
    await pc.setRemoteDescription(answer);
    window.lttracks = tracks;
    return { code: answer.code, type: answer.type, sessionid: answer.sessionid, hasSdp: typeof answer.sdp === 'string' };
  });
  assert.strictEqual(negotiated.type, 'answer');
  assert.ok(negotiated.hasSdp);
  assert.ok(Number.isSafeInteger(negotiated.sessionid) && negotiated.sessionid > 1e9, 'a numeric id parseInt() keeps');
  assert.ok(await until(() => page.evaluate(() => ltpc.connectionState === 'connected'), 40000), 'connected');
  const tracks = await page.evaluate(() => window.lttracks);
  assert.deepStrictEqual(tracks.map((x) => x.kind).sort(), ['audio', 'video']);
  assert.ok(tracks.every((x) => x.hasStream), 'evt.streams[0] is set for both tracks (a=msid in the answer)');

  // webrtcapi.html: /human with the id as the text field's string, interrupt true.
  const human = (text) => page.evaluate(async (text) => {
    const r = await fetch('/human', {
      body: JSON.stringify({ text, type: 'echo', interrupt: true, sessionid: document.getElementById('sessionid').value }),
      headers: { 'Content-Type': 'application/json' }, method: 'POST',
    });
    return r.json();
  }, text);
  const isSpeaking = () => page.evaluate(async () => {
    const r = await fetch('/is_speaking', {
      body: JSON.stringify({ sessionid: parseInt(document.getElementById('sessionid').value) }),
      headers: { 'Content-Type': 'application/json' }, method: 'POST',
    });
    return r.json();
  });
  assert.deepStrictEqual(await isSpeaking(), { code: 0, msg: 'ok', data: false });
  // Right after "connected" the first video packet may not be in yet.
  assert.ok(await until(async () => ((await inbound(page, 'ltpc')).video || {}).framesDecoded > 0, 10000), 'video arrives');
  const before = await inbound(page, 'ltpc');
  // About 27 s of speech: longer than one session latency plus the short
  // reply even on a loaded machine (what is in flight when the cut comes, up
  // to a latency of audio, is still heard).
  const r = await human('This is a long sentence that the next request will cut off before it ends. ' +
    'And here is another long sentence that nobody will ever hear from the avatar at all. '.repeat(6));
  assert.strictEqual(r.code, 0, JSON.stringify(r));
  // Polled as the page does: true once the speech is heard.
  const sentAt = Date.now();
  assert.ok(await until(async () => (await isSpeaking()).data === true, 15000, 50), 'is_speaking turns true');
  const startedAfter = Date.now() - sentAt;
  // interrupt:true cuts it; the new text is spoken instead.
  await sleep(800);
  assert.strictEqual((await human('Short reply.')).code, 0);
  assert.ok(await until(async () => (await isSpeaking()).data === false, 40000, 50), 'is_speaking back to false');
  const stoppedAt = Date.now();
  // The long text takes about 27 s to say. Cut after 0.8 s of it and
  // followed by a short one (about 1 s), speech ends one session latency (the
  // short reply is heard that long after its /human) and about a second after
  // the cut; 2 s more for the polling and a loaded machine's TTS. Uncut, it
  // would end 27 s after it started.
  const latency = (await server.sessions())[0].latency_ms;
  const bound = startedAfter + 800 + latency + 1000 + 2000;
  console.log(`# is_speaking true ${startedAfter} ms after /human; false ${stoppedAt - sentAt} ms after it (latency ${latency.toFixed(0)} ms, bound ${bound.toFixed(0)} ms)`);
  assert.ok(bound < startedAfter + 27000, `the latency (${latency} ms) leaves no room to tell a cut from the whole text`);
  assert.ok(stoppedAt - sentAt < bound, 'the first text was cut off');
  await sleep(500);
  const after = await inbound(page, 'ltpc');
  assert.ok(after.video && before.video, JSON.stringify({ before, after }));
  assert.ok(after.video.framesDecoded > before.video.framesDecoded + 25, 'video decoded');
  assert.ok(after.audio.totalAudioEnergy > before.audio.totalAudioEnergy, 'speech heard');
  // LiveTalking's interrupt route.
  const it = await page.evaluate(async () => (await fetch('/interrupt_talk', {
    body: JSON.stringify({ sessionid: parseInt(document.getElementById('sessionid').value) }),
    headers: { 'Content-Type': 'application/json' }, method: 'POST',
  })).json());
  assert.strictEqual(it.code, 0);
});
