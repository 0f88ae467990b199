/**
 * Relay parity (docs/contract.md 2.1): "a request that the relay authenticates as
 * key K must have been judged by KeyPin as key K".
 *
 * For each relay profile a faithful model of the relay (test/support/
 * relay-models.ts: New API, New API on a case-insensitive MySQL, LiteLLM, a
 * plain OpenAI-compatible upstream) stands behind a real gateway started
 * with the matching RELAY / KEY_CASE. The owner (127.0.0.2) binds key K with
 * a plain request; then the attacker (127.0.0.3) sends requests, raw over a
 * socket, that carry K in every place and spelling some relay reads (and
 * its own key A, unknown keys, decoys), directly and through the project's
 * nginx/keypin.conf. The relay model must NEVER authenticate K for any of
 * them: KeyPin may refuse (400, 403, 429) or forward a request in which the
 * relay finds no key or another one, nothing else.
 *
 * Property runs are bounded (RELAY_PARITY_RUNS, default 200 per profile and
 * path) and replayable (RELAY_PARITY_SEED). RELAY_PARITY_SURVEY=1 collects
 * every violating request instead of stopping (and shrinking) at the first.
 */
import fc from 'fast-check';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from './support/gateway';
import { startNginx, type RunningNginx } from './support/nginx';
import { rawRequest } from './support/raw-http';
import {
  type Attack,
  attackArbitrary,
  type AuthRecord,
  modelOf,
  PARITY_PROFILES,
  type ParityKeys,
  type ParityProfile,
  type RelayModel,
  renderAttack,
  showBytes,
  utf8,
} from './support/relay-models';
import { dropStores, freshStores } from './support/stores';

const OWNER = '127.0.0.2';
const ATTACKER = '127.0.0.3';
const NUM_RUNS = Number(process.env['RELAY_PARITY_RUNS'] ?? 200);
const SEED =
  process.env['RELAY_PARITY_SEED'] === undefined ? undefined : Number(process.env['RELAY_PARITY_SEED']);
const SURVEY = process.env['RELAY_PARITY_SURVEY'] === '1';

// -------------------------------------------------------- fixed examples

const NBSP = utf8('\u00a0');
const IDEOGRAPHIC = utf8('\u3000');
const NEL = utf8('\u0085');
const AWS_TAIL = '/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=5d672d79';

const plain = (path: string, entries: Attack['entries'], method: Attack['method'] = 'POST'): Attack => ({
  method,
  path,
  entries,
  websocket: false,
  behindKeylessUpgrade: false,
});
const ws = (entries: Attack['entries']): Attack => ({
  ...plain('/v1/realtime', entries, 'GET'),
  websocket: true,
});
const swap = (s: string) =>
  [...s].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');

/** The cases of the issue, each tried against every relay (the property must hold whatever the relay). */
const EXAMPLES: { name: string; attack: (k: ParityKeys) => Attack }[] = [
  {
    name: 'mj-api-secret: Bearer sk-<K> (New API reads it when Authorization is empty)',
    attack: (k) =>
      plain('/mj/submit/imagine', [{ header: 'mj-api-secret', value: `Bearer sk-${k.ownerToken}` }]),
  },
  {
    name: 'Authorization: Bearer midjourney-proxy with mj-api-secret: <K>',
    attack: (k) =>
      plain('/mj/submit/imagine', [
        { header: 'Authorization', value: 'Bearer midjourney-proxy' },
        { header: 'mj-api-secret', value: k.owner },
      ]),
  },
  {
    name: '?%6Bey=<K> on a Gemini route',
    attack: (k) => plain('/v1beta/models/gemini-2.0-flash:generateContent', [{ query: `%6Bey=${k.owner}` }]),
  },
  {
    name: '?k%65y=<K> on /v1/models',
    attack: (k) => plain('/v1/models', [{ query: `k%65y=${k.owner}` }], 'GET'),
  },
  {
    name: '?key=<A>&key=<K> (Go reads the first, Starlette the last)',
    attack: (k) =>
      plain('/v1beta/models/gemini-2.0-flash:generateContent', [
        { query: `key=${k.attacker}` },
        { query: `key=${k.owner}` },
      ]),
  },
  {
    name: '?key=+<K>%E3%80%80 (form decoding, Unicode space)',
    attack: (k) => plain('/v1/models', [{ query: `key=+${k.owner}%E3%80%80` }], 'GET'),
  },
  {
    name: 'Authorization: Bearer U+3000 <K> U+3000',
    attack: (k) =>
      plain('/v1/chat/completions', [
        { header: 'Authorization', value: `Bearer ${IDEOGRAPHIC}${k.owner}${IDEOGRAPHIC}` },
      ]),
  },
  {
    name: 'Authorization: Bearer U+00A0 <K>',
    attack: (k) =>
      plain('/v1/chat/completions', [{ header: 'Authorization', value: `Bearer ${NBSP}${k.owner}` }]),
  },
  {
    name: 'Authorization: Bearer <K> U+0085',
    attack: (k) =>
      plain('/v1/chat/completions', [{ header: 'Authorization', value: `Bearer ${k.owner}${NEL}` }]),
  },
  {
    name: 'x-api-key: U+00A0 <K> on /v1/messages (copied into Authorization, then trimmed)',
    attack: (k) => plain('/v1/messages', [{ header: 'x-api-key', value: `${NBSP}${k.owner}` }]),
  },
  {
    name: 'x-litellm-api-key: Bearer <K> beside Authorization: Bearer <A>',
    attack: (k) =>
      plain('/v1/chat/completions', [
        { header: 'Authorization', value: `Bearer ${k.attacker}` },
        { header: 'x-litellm-api-key', value: `Bearer ${k.owner}` },
      ]),
  },
  {
    name: 'Ocp-Apim-Subscription-Key: <K>',
    attack: (k) => plain('/v1/chat/completions', [{ header: 'Ocp-Apim-Subscription-Key', value: k.owner }]),
  },
  {
    name: 'Authorization: Basic <K>',
    attack: (k) => plain('/v1/chat/completions', [{ header: 'Authorization', value: `Basic ${k.owner}` }]),
  },
  {
    name: 'Authorization: AWS4-HMAC-SHA256 Credential=<K>/…',
    attack: (k) =>
      plain('/v1/chat/completions', [
        { header: 'Authorization', value: `AWS4-HMAC-SHA256 Credential=${k.owner}${AWS_TAIL}` },
      ]),
  },
  {
    name: 'Authorization: AWS4-HMAC-SHA256 Credential=Bearer <K>/…',
    attack: (k) =>
      plain('/v1/chat/completions', [
        { header: 'Authorization', value: `AWS4-HMAC-SHA256 Credential=Bearer ${k.owner}${AWS_TAIL}` },
      ]),
  },
  {
    name: 'Authorization: Bearer Bearer <K> (Python replaces every "Bearer ")',
    attack: (k) =>
      plain('/v1/chat/completions', [{ header: 'Authorization', value: `Bearer Bearer ${k.owner}` }]),
  },
  {
    name: '<K> in another case (a relay comparing without case)',
    attack: (k) =>
      plain('/v1/chat/completions', [{ header: 'Authorization', value: `Bearer ${swap(k.owner)}` }]),
  },
  {
    name: 'Authorization: <K> -1 (bare; MySQL PAD SPACE ignores the trailing space New API leaves)',
    attack: (k) => plain('/v1/chat/completions', [{ header: 'Authorization', value: `${k.owner} -1` }]),
  },
  {
    name: 'two Authorization lines, <A> first and <K> second',
    attack: (k) =>
      plain('/v1/chat/completions', [
        { header: 'Authorization', value: `Bearer ${k.attacker}` },
        { header: 'Authorization', value: `Bearer ${k.owner}` },
      ]),
  },
  {
    name: 'x-api-key: <K> beside Authorization: Bearer <A> on /v1/messages',
    attack: (k) =>
      plain('/v1/messages', [
        { header: 'Authorization', value: `Bearer ${k.attacker}` },
        { header: 'x-api-key', value: k.owner },
      ]),
  },
  {
    name: 'empty Authorization and api-key: <K>',
    attack: (k) =>
      plain('/v1/chat/completions', [
        { header: 'Authorization', value: '' },
        { header: 'api-key', value: k.owner },
      ]),
  },
  {
    name: 'litellm_user_api_key: <K> on /anthropic/v1/messages beside Authorization: Bearer <A>',
    attack: (k) =>
      plain('/anthropic/v1/messages', [
        { header: 'Authorization', value: `Bearer ${k.attacker}` },
        { header: 'litellm_user_api_key', value: k.owner },
      ]),
  },
  {
    name: 'subprotocol openai-insecure-api-key.<K> on a plain request (New API reads it on every request)',
    attack: (k) =>
      plain('/v1/chat/completions', [
        { header: 'Sec-WebSocket-Protocol', value: `realtime, openai-insecure-api-key.${k.owner}` },
      ]),
  },
  {
    name: 'WebSocket: subprotocol openai-insecure-api-key.<K>',
    attack: (k) =>
      ws([
        {
          header: 'Sec-WebSocket-Protocol',
          value: `realtime, openai-insecure-api-key.${k.owner}, openai-beta`,
        },
      ]),
  },
  {
    name: 'WebSocket: subprotocol entry led by a lone 0x85 byte (white space to Python; to Go once sent as UTF-8)',
    attack: (k) =>
      ws([{ header: 'Sec-WebSocket-Protocol', value: `realtime,\x85openai-insecure-api-key.${k.owner}` }]),
  },
  {
    name: 'WebSocket: subprotocol entry led by U+0085 (white space to Go)',
    attack: (k) =>
      ws([{ header: 'Sec-WebSocket-Protocol', value: `realtime,${NEL}openai-insecure-api-key.${k.owner}` }]),
  },
  {
    name: 'WebSocket: Authorization: Bearer <K> then a lone 0xA0 byte (Python strips it)',
    attack: (k) => ws([{ header: 'Authorization', value: `Bearer ${k.owner}\xa0` }]),
  },
  {
    name: 'WebSocket: api-key: <K> with an empty Authorization',
    attack: (k) =>
      ws([
        { header: 'Authorization', value: '' },
        { header: 'api-key', value: k.owner },
      ]),
  },
  {
    name: 'a keyless WebSocket upgrade with a request for <K> pipelined behind it',
    attack: (k) => ({
      ...plain('/v1/models', [{ header: 'Authorization', value: `Bearer ${k.owner}` }], 'GET'),
      behindKeylessUpgrade: true,
    }),
  },
];

// --------------------------------------------------------------- helpers

/** How many complete responses `text` holds, up to the first `101` (what follows it is a tunnel). */
function completeResponses(text: string): number {
  let n = 0;
  for (let at = 0; ;) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd === -1) return n;
    const head = text.slice(at, headEnd);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
    if (status === 101) return n + 1;
    let end = headEnd + 4;
    if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
      const last = text.indexOf('\r\n0\r\n\r\n', headEnd);
      if (last === -1) return n;
      end = last + 7;
    } else {
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (length === null) return n; // delimited by the close
      end += Number(length[1]);
      if (text.length < end) return n;
    }
    n++;
    at = end;
  }
}

/**
 * Writes `bytes` (latin1) from `from` and returns the status of the first
 * answer (0: none). Done when `responses` answers are complete or the
 * connection closes; after a `101` (a tunnel) when 50 ms pass in silence.
 */
function exchange(
  port: number,
  bytes: string,
  from: string,
  responses: number,
  limitMs = 4000,
): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    let text = '';
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(limit);
      clearTimeout(quiet);
      socket.destroy();
      resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0));
    };
    const limit = setTimeout(done, limitMs);
    socket.on('connect', () => socket.write(bytes, 'latin1'));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.startsWith('HTTP/1.1 101 ')) {
        clearTimeout(quiet);
        quiet = setTimeout(done, 50);
      } else if (completeResponses(text) >= responses) done();
    });
    socket.on('error', () => undefined);
    socket.on('close', done);
  });
}

interface Sent {
  status: number;
  /** What the relay recorded while the attack was under way. */
  seen: AuthRecord[];
}

/** Sends one attack raw from the attacker's address. */
async function fire(model: RelayModel, port: number, attack: Attack): Promise<Sent> {
  const from = model.records.length;
  const status = await exchange(port, renderAttack(attack), ATTACKER, attack.behindKeylessUpgrade ? 2 : 1);
  // Bytes smuggled behind an upgrade may reach the relay after KeyPin answered.
  if (attack.websocket || attack.behindKeylessUpgrade) await new Promise((r) => setTimeout(r, 30));
  return { status, seen: model.records.slice(from) };
}

/**
 * What the relay recorded that must never happen for the attacker: the
 * owner's key authenticated, or bytes sent behind an upgrade reaching the
 * relay as a request of their own (docs/contract.md 2.4; KeyPin never judged them).
 */
const broken = (keys: ParityKeys, seen: AuthRecord[]) =>
  seen.filter((r) => r.key === keys.ownerToken || r.smuggled);

function describeViolation(profile: ParityProfile, via: string, attack: Attack, sent: Sent): string {
  return [
    `The ${profile.name} relay authenticated the owner's key, or took smuggled bytes as a request, ` +
      `for the attacker (${ATTACKER}, ${via}).`,
    `request bytes: ${showBytes(renderAttack(attack))}`,
    `KeyPin answered: ${sent.status}`,
    ...broken(profile.keys, sent.seen).map(
      (r) =>
        `relay saw: ${r.method} ${showBytes(r.target)} websocket=${r.websocket} smuggled=${r.smuggled} ` +
        `x-real-ip=${r.realIp} presented=${r.presented === null ? 'none' : showBytes(r.presented)} ` +
        `answered ${r.status}`,
    ),
  ].join('\n');
}

const tally = (m: Map<number, number>) =>
  [...m.entries()]
    .sort(([a], [b]) => a - b)
    .map(([s, n]) => `${s}×${n}`)
    .join(' ');

// ----------------------------------------------------------------- tests

/**
 * Each profile twice: with its relay as `RELAY`, and as the `relay` of a
 * catch-all route while `RELAY` names another relay (docs/routes.md): the
 * route's relay must decide key parsing exactly as `RELAY` does.
 */
const OTHER_RELAY = { newapi: 'litellm', litellm: 'openai', openai: 'newapi' } as const;
const PARITY_CASES = PARITY_PROFILES.flatMap((p) => [
  { ...p, viaRoute: false },
  { ...p, name: `${p.name}, as a route's relay`, viaRoute: true },
]);

describe.each(PARITY_CASES)('relay parity: $name', (profile) => {
  const keys = profile.keys;
  const stores = freshStores(`parity_${profile.relay}${profile.viaRoute ? '_route' : ''}`);
  const model = modelOf(profile);
  let gw: GatewayProcess | undefined;
  let nginx: RunningNginx | undefined;
  const port = (via: 'direct' | 'nginx') => (via === 'direct' ? gw!.port : nginx!.port);

  beforeAll(async () => {
    await model.start();
    const where: Record<string, string> = profile.viaRoute
      ? {
          RELAY: OTHER_RELAY[profile.relay],
          ROUTES: JSON.stringify([{ prefix: '/', upstream: model.url, relay: profile.relay }]),
        }
      : { RELAY: profile.relay, DOWNSTREAM_URL: model.url };
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      FIRST_USE_LIMIT: '0',
      TOKEN_NORMALIZE: profile.tokenNormalize,
      KEY_CASE: profile.keyCase,
      ...where,
    });
    nginx = await startNginx([gw.port]);
  });

  afterAll(async () => {
    await nginx?.stop();
    await gw?.stop();
    await model.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  /** The plain, well-formed request of a key's rightful user. */
  const own = (via: 'direct' | 'nginx', key: string, from: string) =>
    rawRequest(
      port(via),
      `GET /v1/models HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`,
      from,
    );

  it('binds K to its owner and A to the attacker with plain requests', async () => {
    const from = model.records.length;
    const r = await own('direct', keys.owner, OWNER);
    expect(r.status, r.body).toBe(200);
    expect(model.authenticationsOf(keys.ownerToken, from).map((x) => x.realIp)).toEqual([OWNER]);
    const a = await own('direct', keys.attacker, ATTACKER);
    expect(a.status, a.body).toBe(200);
  });

  for (const via of ['direct', 'nginx'] as const) {
    describe(via === 'direct' ? 'straight to KeyPin' : 'through nginx/keypin.conf', () => {
      for (const example of EXAMPLES) {
        it(example.name, async () => {
          const attack = example.attack(keys);
          const sent = await fire(model, port(via), attack);
          expect(broken(keys, sent.seen), describeViolation(profile, via, attack, sent)).toEqual([]);
        });
      }

      it(`never lets the relay authenticate K for the attacker (property, ${NUM_RUNS} runs)`, async () => {
        const statuses = new Map<number, number>();
        const violations: string[] = [];
        let reached = 0;
        const from = model.records.length;
        await fc.assert(
          fc.asyncProperty(fc.limitShrink(attackArbitrary(keys), 200), async (attack) => {
            const sent = await fire(model, port(via), attack);
            statuses.set(sent.status, (statuses.get(sent.status) ?? 0) + 1);
            if (sent.seen.length > 0) reached++;
            if (broken(keys, sent.seen).length > 0) {
              const text = describeViolation(profile, via, attack, sent);
              if (!SURVEY) throw new Error(text);
              violations.push(text);
            }
          }),
          { numRuns: NUM_RUNS, seed: SEED },
        );
        console.info(
          `[relay parity] ${profile.name} ${via}: KeyPin answered ${tally(statuses)}; ` +
            `${reached} requests reached the relay`,
        );
        if (SURVEY && violations.length > 0) console.info(violations.join('\n\n'));
        expect(violations, `${violations.length} violations (RELAY_PARITY_SURVEY)`).toEqual([]);
        const seen = model.records.slice(from);
        // What reached the relay late (after its run ended) still counts.
        expect(broken(keys, seen), 'the relay authenticated K during the property run').toEqual([]);
        // KeyPin told the relay who the client was, whatever the client claimed.
        expect(seen.filter((r) => r.realIp !== ATTACKER)).toEqual([]);
        // Not vacuous: some of the generated requests were forwarded.
        expect(reached).toBeGreaterThan(0);
      }, 120_000);
    });
  }

  if (profile.relay === 'newapi') {
    it("refuses New API's Midjourney placeholder on /api/usage/token, where the relay reads it as a key, and only there", async () => {
      const mj = (path: string) =>
        rawRequest(
          port('direct'),
          `GET ${path} HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer midjourney-proxy\r\n` +
            `mj-api-secret: ${keys.owner}\r\nConnection: close\r\n\r\n`,
          OWNER,
        );
      const from = model.records.length;
      for (const path of ['/api/usage/token/', '/api/usage/%74oken']) {
        const usage = await mj(path);
        expect(usage.status, usage.body).toBe(400);
        expect(JSON.parse(usage.body)).toMatchObject({ error: { code: 'ambiguous_key' } });
      }
      expect(model.records.length).toBe(from);
      const imagine = await mj('/mj/submit/imagine');
      expect(imagine.status, imagine.body).toBe(200);
      expect(model.authenticationsOf(keys.ownerToken, from).map((x) => x.realIp)).toEqual([OWNER]);
    });
  }

  it("still lets the owner's plain request through, directly and through nginx", async () => {
    for (const via of ['direct', 'nginx'] as const) {
      const r = await own(via, keys.owner, OWNER);
      expect(r.status, `${via}: ${r.body}`).toBe(200);
    }
  });
});
