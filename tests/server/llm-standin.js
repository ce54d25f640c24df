// SPDX-License-Identifier: LGPL-2.1-or-later
// An OpenAI-compatible chat server stand-in on loopback (no LLM exists
// offline): POST …/chat/completions answers each request with the next of
// `replies` as server-sent events, `firstTokenMs` after the request and then
// `tokensPerSecond`; records what it was sent and whether the client closed
// the connection before the end. A reply {status} answers that HTTP error.
'use strict';
const http = require('http');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function llmStandIn(t, replies, { firstTokenMs = 300, tokensPerSecond = 30 } = {}) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', async () => {
      const record = { path: req.url, body: JSON.parse(body), closedEarly: false, auth: req.headers.authorization, at: Date.now() };
      seen.push(record);
      const reply = replies[Math.min(seen.length - 1, replies.length - 1)];
      if (reply.status) { res.writeHead(reply.status, { 'Content-Type': 'application/json' }); res.end('{"error":{"message":"overloaded"}}'); return; }
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      let done = false;
      res.on('close', () => { if (!done) { record.closedEarly = true; record.closedAt = Date.now(); } });
      await sleep(firstTokenMs);
      record.tokenTimes = [];
      for (const token of reply.tokens) {
        if (res.destroyed) return;
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: token } }] })}\n\n`);
        record.tokenTimes.push(Date.now());
        await sleep(1000 / tokensPerSecond);
      }
      done = true;
      res.end('data: [DONE]\n\n');
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => {
    if (t) t.after(() => srv.close());
    resolve({ url: `http://127.0.0.1:${srv.address().port}/v1`, seen, close: () => srv.close() });
  }));
}

module.exports = { llmStandIn };
