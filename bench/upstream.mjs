// A deliberately tiny node:http upstream in its own process: the soak's
// upstream (scripts/soak.mjs), and the source of paced SSE streams behind the
// bench's nginx upstream (bench/nginx.upstream.conf.template passes it the
// streaming requests; nginx answers everything else itself, faster than
// Node could).
//
//   node bench/upstream.mjs [--host 127.0.0.1] [--port 0]
//
// Prints one line `READY <port>` on stdout once listening. Exits when its
// stdin closes (the bench runner died) or on SIGTERM/SIGINT.
//
//   GET  /v1/models            ~200 bytes of JSON, precomputed
//   POST /v1/chat/completions  stream:true → SSE: first event written with the
//                              headers, then one after FIRST_GAP_MS, then a few
//                              more NEXT_GAP_MS apart, then [DONE];
//                              otherwise a small chat.completion JSON
//   anything else              404
//
// A request without an Authorization header gets 401, which shows that the
// proxy in front passes the key through.
import { createServer } from 'node:http';

const FIRST_GAP_MS = 10;
const NEXT_GAP_MS = 2;
const MORE_EVENTS = 3;

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : process.argv[i + 1];
}

const MODELS = Buffer.from(
  JSON.stringify({
    object: 'list',
    data: [
      { id: 'bench-model-a', object: 'model', created: 1700000000, owned_by: 'bench' },
      { id: 'bench-model-b', object: 'model', created: 1700000000, owned_by: 'bench' },
    ],
  }),
);
const COMPLETION = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 1700000000,
    model: 'bench-model-a',
    choices: [{ index: 0, message: { role: 'assistant', content: 'pong' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  }),
);
const JSON_HEADERS = (len) => ({ 'content-type': 'application/json', 'content-length': len });
const chunk = (content, finish) =>
  `data: ${JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion.chunk',
    created: 1700000000,
    model: 'bench-model-a',
    choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
  })}\n\n`;
const FIRST_EVENT = chunk('', null);
const NEXT_EVENT = chunk('tok ', null);
const LAST_EVENT = chunk(null, 'stop') + 'data: [DONE]\n\n';

function sendJson(res, status, body) {
  res.writeHead(status, JSON_HEADERS(body.length));
  res.end(body);
}

function error(res, status, code) {
  sendJson(
    res,
    status,
    Buffer.from(JSON.stringify({ error: { message: code, type: 'bench_upstream', code } })),
  );
}

function stream(res) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  // Headers and the first event leave in one write, at once.
  res.write(FIRST_EVENT);
  let left = MORE_EVENTS;
  let timer;
  const next = () => {
    if (res.destroyed) return;
    if (left-- > 0) {
      res.write(NEXT_EVENT);
      timer = setTimeout(next, NEXT_GAP_MS);
    } else {
      res.end(LAST_EVENT);
    }
  };
  res.on('close', () => clearTimeout(timer));
  timer = setTimeout(next, FIRST_GAP_MS);
}

const server = createServer((req, res) => {
  const q = req.url.indexOf('?');
  const path = q === -1 ? req.url : req.url.slice(0, q);
  if (!req.headers.authorization) {
    req.resume();
    error(res, 401, 'missing_key');
    return;
  }
  if (req.method === 'GET' && path === '/v1/models') {
    req.resume();
    sendJson(res, 200, MODELS);
    return;
  }
  if (req.method === 'POST' && path === '/v1/chat/completions') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => {
      if (body.length < 65536) body += d;
    });
    req.on('end', () => {
      if (/"stream"\s*:\s*true/.test(body)) stream(res);
      else sendJson(res, 200, COMPLETION);
    });
    return;
  }
  req.resume();
  error(res, 404, 'not_found');
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.maxRequestsPerSocket = 0;

server.listen(Number(arg('port', '0')), arg('host', '127.0.0.1'), () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
