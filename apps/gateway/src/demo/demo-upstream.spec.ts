import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MAX_BODY_BYTES, startDemoUpstream } from './demo-upstream';
import type { DemoUpstream } from './demo-upstream';

const AUTH = { authorization: 'Bearer sk-demo123' };

let sut: DemoUpstream;

beforeAll(async () => {
  sut = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await sut.close();
});

function chat(body: unknown, headers: Record<string, string> = AUTH): Promise<Response> {
  return fetch(`${sut.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function expectOpenAiError(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as { error: { message: unknown; type: unknown; code: unknown } };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(typeof body.error.type).toBe('string');
}

/** Reads an SSE body, returning each `data:` payload with the time it arrived. */
async function readEvents(res: Response): Promise<{ data: string; at: number }[]> {
  const events: { data: string; at: number }[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      for (const line of block.split('\n')) {
        if (line.startsWith('data: ')) events.push({ data: line.slice(6), at: performance.now() });
      }
    }
  }
  return events;
}

describe('demo upstream', () => {
  it('listens on the requested interface and reports its URL', () => {
    expect(sut.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('lists two models in the OpenAI shape', async () => {
    const res = await fetch(`${sut.url}/v1/models`, { headers: AUTH });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; data: { id: string; object: string }[] };
    expect(body.object).toBe('list');
    expect(body.data).toHaveLength(2);
    for (const model of body.data) {
      expect(model.object).toBe('model');
      expect(model.id).toEqual(expect.any(String));
    }
  });

  it('answers a chat completion echoing the last user message', async () => {
    const res = await chat({
      model: 'keypin-demo-small',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'user', content: 'ping pong 42' },
      ],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      object: string;
      model: string;
      choices: { message: { role: string; content: string }; finish_reason: string }[];
      usage: { total_tokens: number };
    };
    expect(body.object).toBe('chat.completion');
    expect(body.model).toBe('keypin-demo-small');
    expect(body.choices[0]?.message.role).toBe('assistant');
    expect(body.choices[0]?.message.content).toContain('ping pong 42');
    expect(body.choices[0]?.message.content).not.toContain('first question');
    expect(body.choices[0]?.finish_reason).toBe('stop');
    expect(body.usage.total_tokens).toBeGreaterThan(0);
  });

  it('reads text parts of multi-part user content', async () => {
    const res = await chat({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'describe' },
            { type: 'image_url', image_url: { url: 'data:,' } },
          ],
        },
      ],
    });
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    expect(body.choices[0]?.message.content).toContain('describe');
  });

  it('streams chunks as separate server-sent events, then [DONE]', async () => {
    const started = performance.now();
    const res = await chat({ stream: true, messages: [{ role: 'user', content: 'stream me three words' }] });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);

    const events = await readEvents(res);
    expect(events.length).toBeGreaterThanOrEqual(4);
    expect(events.at(-1)?.data).toBe('[DONE]');

    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e.data) as {
          object: string;
          choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
        },
    );
    for (const c of chunks) expect(c.object).toBe('chat.completion.chunk');
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toContain('stream me three words');

    // Written over time, not in one burst: the first event comes early and the last one later.
    const first = events[0]!.at - started;
    const spread = events.at(-1)!.at - events[0]!.at;
    expect(spread).toBeGreaterThanOrEqual(15 * (events.length - 2));
    expect(first).toBeLessThan(spread);
  });

  it('refuses a request without a bearer key with 401', async () => {
    await expectOpenAiError(await fetch(`${sut.url}/v1/models`), 401, 'invalid_api_key');
    await expectOpenAiError(
      await chat({ messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Basic abc' }),
      401,
      'invalid_api_key',
    );
  });

  it('answers 404 on an unknown path', async () => {
    await expectOpenAiError(await fetch(`${sut.url}/v1/nope`, { headers: AUTH }), 404, 'not_found');
  });

  it('answers 400 on a body that is not JSON', async () => {
    await expectOpenAiError(await chat('{"messages": ['), 400, 'invalid_json');
  });

  it('answers 400 when messages are missing', async () => {
    await expectOpenAiError(await chat({ model: 'x' }), 400, 'missing_messages');
  });

  it('answers 413 when the body is larger than 1 MiB', async () => {
    const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(DEMO_MAX_BODY_BYTES) }] });
    await expectOpenAiError(await chat(big), 413, 'request_too_large');
  });

  it('answers 413 on an oversized chunked body, without a content-length to go by', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${sut.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const piece = Buffer.alloc(64 * 1024, 0x20);
      for (let sent = 0; sent <= DEMO_MAX_BODY_BYTES; sent += piece.length) req.write(piece);
      req.end();
    });
    expect(status).toBe(413);
  });

  it('closes even while a stream is still being written', async () => {
    const other = await startDemoUpstream({ port: 0 });
    const res = await fetch(`${other.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'a b c d e f g h i j' }] }),
    });
    expect(res.status).toBe(200);
    await other.close();
    await expect(readEvents(res)).rejects.toThrow();
  });
});
