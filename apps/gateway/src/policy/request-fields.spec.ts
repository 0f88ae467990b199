/**
 * Where a key policy looks in a request (docs/policy-fields.md): every model
 * name and output-token cap any supported relay could read, and refusal
 * where KeyPin cannot be sure.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addBodyFields,
  type FieldsResult,
  fieldsFromTarget,
  foldName,
  MAX_JSON_DEPTH,
  type RequestFields,
  topLevelEntries,
} from './request-fields';

const JSON_CT = 'application/json';

function body(url: string, contentType: string | undefined, text: string | Buffer): FieldsResult {
  const fields = fieldsFromTarget(url);
  return addBodyFields(fields, contentType, typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
}

function json(
  text: string | Buffer,
  url = '/v1/chat/completions',
  contentType: string | undefined = JSON_CT,
): RequestFields {
  const r = body(url, contentType, text);
  if (!r.ok) throw new Error(`refused: ${r.message}`);
  return r.fields;
}

function refused(
  text: string | Buffer,
  url = '/v1/chat/completions',
  contentType: string | undefined = JSON_CT,
): string {
  const r = body(url, contentType, text);
  if (r.ok) throw new Error(`not refused: ${JSON.stringify(r.fields)}`);
  return r.message;
}

function multipart(parts: string[], boundary = 'XyZ'): Buffer {
  return Buffer.from(parts.map((p) => `--${boundary}\r\n${p}\r\n`).join('') + `--${boundary}--\r\n`, 'utf8');
}

/** `s` without control characters and surrogates. */
function saneName(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch >= 0x20 && ch !== 0x7f && (ch < 0xd800 || ch > 0xdfff)) out += s[i];
  }
  return out;
}

const mpCt = (boundary = 'XyZ'): string => `multipart/form-data; boundary=${boundary}`;

describe('fieldsFromTarget', () => {
  it('names nothing for an ordinary path', () => {
    expect(fieldsFromTarget('/v1/chat/completions')).toEqual({ models: [], maxTokens: [] });
    expect(fieldsFromTarget('/v1/chat/completions?stream=true')).toEqual({ models: [], maxTokens: [] });
  });

  it('reads the model of a Gemini path (v1beta and v1), not its query key', () => {
    expect(fieldsFromTarget('/v1beta/models/gemini-pro:generateContent?key=abc').models).toEqual([
      'gemini-pro',
    ]);
    expect(fieldsFromTarget('/v1/models/gemini-1.5-flash:streamGenerateContent?alt=sse').models).toEqual([
      'gemini-1.5-flash',
    ]);
    expect(fieldsFromTarget('/models/gemini-pro:countTokens').models).toEqual(['gemini-pro']);
  });

  it('reads percent-encoded Gemini paths as the relays decode them', () => {
    expect(fieldsFromTarget('/v1beta/models/gemini%2Dpro%3AgenerateContent').models).toEqual(['gemini-pro']);
    expect(fieldsFromTarget('/v1beta/models/%67emini-pro:generateContent').models).toEqual(['gemini-pro']);
    // %2F is a '/' in the decoded path: New API and LiteLLM's auth read across it.
    expect(fieldsFromTarget('/v1beta/models/vendor%2Fmodel:generateContent').models).toEqual([
      'vendor/model',
    ]);
  });

  it('takes both readings of a model with colons (first colon: New API, LiteLLM auth; last: LiteLLM route)', () => {
    expect(fieldsFromTarget('/v1beta/models/a:b:generateContent').models).toEqual(['a', 'a:b']);
  });

  it('reads a Gemini path without a verb (New API takes the rest of the path)', () => {
    expect(fieldsFromTarget('/v1/models/gpt-4o').models).toEqual(['gpt-4o']);
  });

  it('reads Google paths behind a prefix (LiteLLM searches the route) and Vertex AI pass-through', () => {
    expect(fieldsFromTarget('/gemini/v1beta/models/gemini-pro:generateContent').models).toEqual([
      'gemini-pro',
    ]);
    expect(
      fieldsFromTarget(
        '/vertex_ai/v1/projects/p/locations/us-central1/publishers/google/models/gemini-1.5-pro:generateContent',
      ).models,
    ).toEqual(['gemini-1.5-pro']);
    expect(fieldsFromTarget('/Vertex-AI/v1/publishers/google/models/m1').models).toEqual(['m1']);
  });

  it('reads the Azure deployment path: first segment (LiteLLM auth) and the greedy route parameter', () => {
    expect(
      fieldsFromTarget('/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-01').models,
    ).toEqual(['gpt-4o']);
    expect(fieldsFromTarget('/openai/deployments/a/b/chat/completions').models).toEqual(['a', 'a/b']);
    expect(fieldsFromTarget('/openai/deployments/emb/embeddings').models).toEqual(['emb']);
  });

  it('reads /v1/engines/<model>/embeddings and LiteLLM /engines/<model>/…', () => {
    expect(fieldsFromTarget('/v1/engines/text-embedding-3-small/embeddings').models).toEqual([
      'text-embedding-3-small',
    ]);
    expect(fieldsFromTarget('/engines/gpt-4o/chat/completions').models).toEqual(['gpt-4o']);
  });

  it('reads every query model, percent-decoded, + as space, any name spelling', () => {
    expect(fieldsFromTarget('/v1/realtime?model=gpt-4o-realtime-preview').models).toEqual([
      'gpt-4o-realtime-preview',
    ]);
    expect(fieldsFromTarget('/v1/realtime?mod%65l=gpt%2D4o').models).toEqual(['gpt-4o']);
    expect(fieldsFromTarget('/v1/realtime?model=a+b').models).toEqual(['a b']);
    expect(fieldsFromTarget('/v1/realtime?model=a&model=b').models).toEqual(['a', 'b']);
    expect(fieldsFromTarget('/v1/realtime?x=1;model=c').models).toEqual(['c']);
    expect(fieldsFromTarget('/v1/files?MODEL=d&target_model_names=e').models).toEqual(['d', 'e']);
    expect(fieldsFromTarget('/v1/realtime?model=').models).toEqual([]);
  });

  it('splits a model with commas as LiteLLM does (and keeps the whole name)', () => {
    expect(fieldsFromTarget('/v1/realtime?model=a,%20b').models).toEqual(['a, b', 'a', 'b']);
  });

  it('reads the path as bytes (one char per byte) and decodes UTF-8', () => {
    const latin1 = Buffer.from('/v1beta/models/modèle:generateContent', 'utf8').toString('latin1');
    expect(fieldsFromTarget(latin1).models).toEqual(['modèle']);
  });

  it('reads an absolute-form target by its path', () => {
    expect(fieldsFromTarget('http://relay.example/v1beta/models/g:generateContent?key=k').models).toEqual([
      'g',
    ]);
  });

  it('reads the path a lenient server resolves too', () => {
    expect(fieldsFromTarget('/v1beta//models/./gemini-pro:generateContent').models).toContain('gemini-pro');
    expect(fieldsFromTarget('/v1beta/models/a;x=1:generateContent').models).toEqual(['a;x=1', 'a']);
  });

  it('derives New API task models from the path', () => {
    expect(fieldsFromTarget('/suno/submit/MUSIC').models).toEqual(['suno_music']);
    expect(fieldsFromTarget('/mj/submit/imagine').models).toEqual(['mj_imagine']);
    expect(fieldsFromTarget('/fast/mj/submit/describe').models).toEqual(['mj_describe']);
    expect(fieldsFromTarget('/mj/insight-face/swap').models).toEqual(['swap_face']);
    expect(fieldsFromTarget('/mj/submit/upload-discord-images').models).toEqual(['mj_upload']);
    expect(fieldsFromTarget('/mj/task/abc/fetch').models).toEqual([]);
  });
});

describe('addBodyFields: JSON', () => {
  it('reads model and every kind of token cap', () => {
    expect(json('{"model":"gpt-4o","max_tokens":100}')).toEqual({ models: ['gpt-4o'], maxTokens: [100] });
    expect(json('{"model":"o1","max_completion_tokens":5,"max_tokens":7}').maxTokens).toEqual([5, 7]);
    expect(json('{"model":"gpt-4.1","max_output_tokens":64}', '/v1/responses').maxTokens).toEqual([64]);
    expect(json('{"model":"claude","max_tokens_to_sample":9}').maxTokens).toEqual([9]);
  });

  it('adds to what the target named', () => {
    expect(json('{"model":"gemini-x"}', '/v1beta/models/gemini-pro:generateContent').models).toEqual([
      'gemini-pro',
      'gemini-x',
    ]);
  });

  it('reads names that fold to a field the way Go does', () => {
    expect(json('{"MODEL":"gpt-4o"}').models).toEqual(['gpt-4o']);
    expect(json('{"Model":"gpt-4o"}').models).toEqual(['gpt-4o']);
    expect(json('{"Max_Tokens":100}').maxTokens).toEqual([100]);
    // KELVIN SIGN folds to K, LONG S to S.
    expect(json('{"max_to\\u212Aen\\u017F":100}').maxTokens).toEqual([100]);
    expect(json('{"max_to\u212Aen\u017F":100}').maxTokens).toEqual([100]);
    expect(json('{"mod\\u0065l":"x"}').models).toEqual(['x']);
  });

  it('ignores names that fold to nothing read', () => {
    expect(json('{"modeł":"x","max_tokens ":5,"İmodel":"y"}')).toEqual({ models: [], maxTokens: [] });
  });

  it('refuses duplicates that differ, accepts duplicates that agree', () => {
    refused('{"model":"gpt-4o-mini","model":"gpt-4o"}');
    refused('{"model":"a","MODEL":"b"}');
    refused('{"model":"a","model":null}');
    refused('{"max_tokens":10,"max_tokens":100000}');
    expect(json('{"model":"a","model":"a"}').models).toEqual(['a']);
    expect(json('{"model":"a","Model":"\\u0061"}').models).toEqual(['a']);
    expect(json('{"max_tokens":10,"max_tokens":1e1}').maxTokens).toEqual([10]);
  });

  it('ignores models and caps nested in messages', () => {
    const f = json(
      '{"model":"a","messages":[{"role":"user","content":"hi","model":"b","max_tokens":999999}],"metadata":{"model":"c"}}',
    );
    expect(f).toEqual({ models: ['a'], maxTokens: [] });
  });

  it('refuses NaN and Infinity (Python json accepts them)', () => {
    refused('{"model":"a","max_tokens":NaN}');
    refused('{"model":"a","max_tokens":Infinity}');
    refused('{"model":"a","max_tokens":-Infinity}', '/v1/chat/completions', 'text/plain');
  });

  it('takes numbers in any JSON spelling, refuses anything but a non-negative number', () => {
    expect(json('{"max_tokens":1e3}').maxTokens).toEqual([1000]);
    expect(json('{"max_tokens":100.0}').maxTokens).toEqual([100]);
    expect(json('{"max_tokens":-0}').maxTokens).toEqual([0]);
    expect(json('{"max_tokens":null}').maxTokens).toEqual([]);
    refused('{"max_tokens":"5000"}');
    refused('{"max_tokens":-1}');
    refused('{"max_tokens":true}');
    refused('{"max_tokens":[1]}');
    refused('{"max_tokens":1e400}');
  });

  it('refuses a model that is not a string, accepts null as none', () => {
    refused('{"model":42}');
    refused('{"model":["a","b"]}');
    refused('{"model":{"name":"a"}}');
    expect(json('{"model":null}').models).toEqual([]);
    expect(json('{"model":""}').models).toEqual([]);
  });

  it('refuses model names with control characters or lone surrogates', () => {
    refused('{"model":"gpt-4o\\n"}');
    refused('{"model":"gpt-4o\\ud800"}');
    expect(json('{"model":"😀"}').models).toEqual(['😀']);
  });

  it('splits comma-separated models (LiteLLM calls each)', () => {
    expect(json('{"model":"gpt-4o-mini, o1-pro"}').models).toEqual([
      'gpt-4o-mini, o1-pro',
      'gpt-4o-mini',
      'o1-pro',
    ]);
  });

  it('reads LiteLLM target_model_names and client-side fallbacks', () => {
    expect(json('{"target_model_names":"a,b"}').models).toEqual(['a,b', 'a', 'b']);
    expect(json('{"target_model_names":["c","d"]}').models).toEqual(['c', 'd']);
    refused('{"target_model_names":[1]}');
    expect(json('{"model":"a","fallbacks":["b",{"model":"c","messages":[]},{"d":["e"]},7]}').models).toEqual([
      'a',
      'b',
      'c',
      'd',
      'e',
    ]);
    expect(json('{"context_window_fallbacks":[{"a":["b"]}],"content_policy_fallbacks":"c"}').models).toEqual([
      'a',
      'b',
      'c',
    ]);
  });

  it('reads model and caps merged from extra_body', () => {
    expect(json('{"model":"a","max_tokens":1,"extra_body":{"model":"b","max_tokens":99999}}')).toEqual({
      models: ['a', 'b'],
      maxTokens: [1, 99999],
    });
  });

  it('reads Gemini generation configs in camel and snake case, and in batch requests', () => {
    const url = '/v1beta/models/gemini-pro:generateContent';
    expect(
      json('{"contents":[],"generationConfig":{"maxOutputTokens":256,"temperature":1}}', url).maxTokens,
    ).toEqual([256]);
    expect(json('{"generation_config":{"max_output_tokens":512}}', url).maxTokens).toEqual([512]);
    expect(json('{"GenerationConfig":{"MaxOutputTokens":1}}', url).maxTokens).toEqual([1]);
    expect(json('{"config":{"maxOutputTokens":3}}', url).maxTokens).toEqual([3]);
    expect(
      json('{"requests":[{"generationConfig":{"maxOutputTokens":4}},{"contents":[]}]}', url).maxTokens,
    ).toEqual([4]);
    expect(json('{"generationConfig":{"maxOutputTokens":2,"max_output_tokens":8}}', url).maxTokens).toEqual([
      2, 8,
    ]);
    refused('{"generationConfig":{"maxOutputTokens":"9"}}', url);
    refused('{"generationConfig":{"maxOutputTokens":1,"MAXOUTPUTTOKENS":2}}', url);
    refused('{"generationConfig":{"maxOutputTokens":1},"generationConfig":{"maxOutputTokens":2}}', url);
    expect(json('{"generationConfig":null,"config":"x"}', url).maxTokens).toEqual([]);
  });

  it('refuses a body declared JSON that does not parse', () => {
    refused('{"model":"a",}');
    refused('hello');
    refused('   ');
    refused('{"model":"a"} trailing');
  });

  it('refuses a body that looks like a JSON object whatever its Content-Type, except a form', () => {
    refused('{"model":"a",', '/v1/chat/completions', 'text/plain');
    refused('{"model":"a",', '/v1/chat/completions', undefined);
    refused('\uFEFF{"model":"a"}', '/v1/chat/completions', undefined);
  });

  it('reads JSON whatever the Content-Type (LiteLLM parses every non-form body)', () => {
    expect(json('{"model":"a"}', '/v1/chat/completions', 'text/plain').models).toEqual(['a']);
    expect(json('{"model":"a"}', '/v1/chat/completions', undefined).models).toEqual(['a']);
    expect(json(' \n{"model":"a"}', '/v1/chat/completions', 'application/octet-stream').models).toEqual([
      'a',
    ]);
  });

  it('lets through bodies that cannot be an object when nothing claims JSON', () => {
    expect(json('hello', '/v1/chat/completions', 'text/plain')).toEqual({ models: [], maxTokens: [] });
    expect(json(Buffer.from([0x89, 0x50, 0x4e, 0x47]), '/v1/files', 'image/png').models).toEqual([]);
    expect(json('[{"model":"a"}]').models).toEqual([]);
    expect(json('"x"').models).toEqual([]);
  });

  it('refuses invalid UTF-8 in a JSON body', () => {
    refused(Buffer.concat([Buffer.from('{"model":"gpt'), Buffer.from([0xff]), Buffer.from('"}')]));
  });

  it('refuses nesting deeper than MAX_JSON_DEPTH, accepts up to it', () => {
    const nest = (n: number): string => `{"model":"a","x":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}`;
    expect(json(nest(MAX_JSON_DEPTH)).models).toEqual(['a']);
    expect(refused(nest(MAX_JSON_DEPTH + 1))).toMatch(/deeper/);
  });

  it('refuses numbers Python will not convert', () => {
    expect(refused(`{"model":"a","n":${'9'.repeat(4301)}}`)).toMatch(/digits/);
    expect(json(`{"model":"a","n":${'9'.repeat(4300)}}`).models).toEqual(['a']);
  });

  it('refuses bodies One API would decode as XML, YAML, TOML or MessagePack', () => {
    refused('model: gpt-4o', '/v1/chat/completions', 'application/x-yaml');
    refused('<model>gpt-4o</model>', '/v1/chat/completions', 'text/xml; charset=utf-8');
  });

  it('works on fields not made by fieldsFromTarget (no path-specific fields then)', () => {
    const r = addBodyFields(
      { models: ['x'], maxTokens: [] },
      JSON_CT,
      Buffer.from('{"model":"x","action":"A"}'),
    );
    expect(r).toEqual({ ok: true, fields: { models: ['x'], maxTokens: [] } });
  });

  it('reads an empty body as naming nothing', () => {
    expect(json('', '/v1/chat/completions')).toEqual({ models: [], maxTokens: [] });
  });
});

describe('addBodyFields: multipart', () => {
  it('reads the model part and a token cap part', () => {
    const b = multipart([
      'Content-Disposition: form-data; name="model"\r\n\r\nwhisper-1',
      'Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF....',
      'Content-Disposition: form-data; name=max_tokens\r\n\r\n64',
    ]);
    expect(json(b, '/v1/audio/transcriptions', mpCt())).toEqual({ models: ['whisper-1'], maxTokens: [64] });
  });

  it('refuses two model parts that differ, accepts two that agree', () => {
    const two = (a: string, b: string): Buffer =>
      multipart([
        `Content-Disposition: form-data; name="model"\r\n\r\n${a}`,
        `Content-Disposition: form-data; name="model"\r\n\r\n${b}`,
      ]);
    refused(two('gpt-image-1', 'dall-e-3'), '/v1/images/edits', mpCt());
    expect(json(two('x', 'x'), '/v1/images/edits', mpCt()).models).toEqual(['x']);
  });

  it('reads folded and [] part names', () => {
    const b = multipart(['Content-Disposition: form-data; name="MODEL[]"\r\n\r\nm']);
    expect(json(b, '/v1/chat/completions', mpCt()).models).toEqual(['m']);
    // New API does not read "MODEL[]" and falls back to its default; LiteLLM reads "m".
    expect(json(b, '/v1/audio/transcriptions', mpCt()).models).toEqual(['whisper-1', 'm']);
  });

  it('takes a quoted boundary and LF-only lines', () => {
    const b = Buffer.from('--b1\nContent-Disposition: form-data; name="model"\n\ntts-1\n--b1--\n');
    expect(json(b, '/v1/audio/speech', 'multipart/form-data; boundary="b1"').models).toEqual(['tts-1']);
  });

  it('refuses when the boundary cannot be found', () => {
    refused(
      multipart(['Content-Disposition: form-data; name="model"\r\n\r\nx']),
      '/v1/images/edits',
      'multipart/form-data',
    );
    refused(
      multipart(['Content-Disposition: form-data; name="model"\r\n\r\nx']),
      '/v1/images/edits',
      mpCt('other'),
    );
    refused('x', '/v1/images/edits', 'multipart/form-data; boundary=a; boundary=b');
    refused('x', '/v1/images/edits', 'multipart/form-data; boundary="a\\,b"');
  });

  it('refuses model parts KeyPin cannot be sure of', () => {
    const one = (part: string): string => refused(multipart([part]), '/v1/audio/transcriptions', mpCt());
    one('Content-Disposition: form-data; name="model"; filename="m.txt"\r\n\r\nwhisper-1');
    one(
      'Content-Disposition: form-data; name="model"\r\nContent-Transfer-Encoding: base64\r\n\r\nd2hpc3Blci0x',
    );
    one("Content-Disposition: form-data; name*=UTF-8''model\r\n\r\nwhisper-1");
    one('Content-Disposition: form-data;\r\n name="model"\r\n\r\nwhisper-1');
    one('Content-Disposition: form-data; name="model"\r\n\r\nwhisper\r\n1');
    one('Content-Disposition: form-data; name="_charset_"\r\n\r\nutf-16');
  });

  it('ignores parts that name nothing read', () => {
    const b = multipart([
      'Content-Disposition: form-data; name="prompt"\r\n\r\n{"model":"x"}',
      'Content-Disposition: form-data; name="image"; filename="model"\r\n\r\nPNG',
    ]);
    expect(json(b, '/v1/images/edits', mpCt())).toEqual({ models: [], maxTokens: [] });
  });

  it('refuses more parts than Starlette reads', () => {
    const parts = Array.from(
      { length: 1001 },
      (_, i) => `Content-Disposition: form-data; name="f${i}"\r\n\r\nx`,
    );
    refused(multipart(parts), '/v1/audio/transcriptions', mpCt());
    expect(json(multipart(parts.slice(0, 1000)), '/v1/audio/transcriptions', mpCt()).models).toEqual([
      'whisper-1',
    ]);
  });

  it('refuses a cap part that is not plain digits', () => {
    refused(
      multipart(['Content-Disposition: form-data; name="max_tokens"\r\n\r\n1e3']),
      '/v1/chat/completions',
      mpCt(),
    );
  });
});

describe('addBodyFields: urlencoded', () => {
  const CT = 'application/x-www-form-urlencoded';

  it('reads model and caps, percent-decoding names and values', () => {
    expect(json('model=gpt-4o&max_tokens=10', '/v1/chat/completions', CT)).toEqual({
      models: ['gpt-4o'],
      maxTokens: [10],
    });
    expect(json('mod%65l=gpt%2D4o+mini', '/v1/chat/completions', CT).models).toEqual(['gpt-4o mini']);
    expect(json('x=1;MODEL=a', '/v1/chat/completions', CT).models).toEqual(['a']);
    expect(json('max_to%E2%84%AAens=5', '/v1/chat/completions', CT).maxTokens).toEqual([5]);
  });

  it('refuses differing duplicates, raw non-ASCII values and non-digit caps', () => {
    refused('model=a&model=b', '/v1/chat/completions', CT);
    refused(Buffer.from('model=gpt-\xe9', 'latin1'), '/v1/chat/completions', CT);
    refused('model=%ff', '/v1/chat/completions', CT);
    refused('max_tokens=-1', '/v1/chat/completions', CT);
    expect(json('model=a&model=a', '/v1/chat/completions', CT).models).toEqual(['a']);
  });

  it('does not read a form body as JSON', () => {
    expect(json('{"model":"a",', '/v1/chat/completions', CT).models).toEqual([]);
  });
});

describe('the relays’ default models (New API, One API)', () => {
  it('names the default of a path until the body names a model', () => {
    expect(fieldsFromTarget('/v1/moderations').models).toEqual([
      'text-moderation-stable',
      'text-moderation-latest',
      'omni-moderation-latest',
    ]);
    expect(json('{"input":"x"}', '/v1/moderations').models).toEqual([
      'text-moderation-stable',
      'text-moderation-latest',
      'omni-moderation-latest',
    ]);
    expect(json('{"model":"omni-moderation-latest","input":"x"}', '/v1/moderations').models).toEqual([
      'omni-moderation-latest',
    ]);
    expect(json('{"model":"gpt-image-1","prompt":"p"}', '/v1/images/generations').models).toEqual([
      'gpt-image-1',
    ]);
    expect(json('{"model":null,"prompt":"p"}', '/v1/images/generations').models).toEqual([
      'dall-e',
      'dall-e-2',
    ]);
    expect(json('model=tts-1-hd', '/v1/audio/speech', 'application/x-www-form-urlencoded').models).toEqual([
      'tts-1-hd',
    ]);
  });

  it('keeps the default when only Go would read the model (gjson and Gin forms read exactly "model")', () => {
    expect(json('{"Model":"x"}', '/v1/audio/speech').models).toEqual(['tts-1', 'x']);
  });

  it('keeps a body model that equals a default', () => {
    expect(json('{"model":"whisper-1"}', '/v1/audio/translations').models).toEqual(['whisper-1']);
  });
});

describe('addBodyFields: path-specific body fields (New API)', () => {
  it('Midjourney change: "mj_" + the lower-case body action', () => {
    expect(json('{"action":"UPSCALE","taskId":"1","index":1}', '/mj/submit/change').models).toEqual([
      'mj_upscale',
    ]);
    expect(json('{"taskId":"1"}', '/mj/submit/simple-change').models).toEqual(['mj_']);
    refused('{"action":"UPSCALE","Action":"REROLL"}', '/mj/submit/change');
  });

  it('Midjourney action: from the customId', () => {
    expect(json('{"customId":"MJ::JOB::upsample::2::abc"}', '/mj/submit/action').models).toEqual([
      'mj_upscale',
    ]);
    expect(json('{"customId":"MJ::Outpaint::x"}', '/mj/submit/action').models).toEqual(['mj_zoom']);
    expect(json('{"customId":"MJ::JOB::xvariation::1","action":"PAN"}', '/mj/submit/action').models).toEqual([
      'mj_pan',
    ]);
    expect(json('{"customId":"nonsense"}', '/mj/submit/action').models).toEqual([]);
  });

  it('Kling: model_name; Jimeng: req_key', () => {
    expect(json('{"model_name":"kling-v1","prompt":"p"}', '/kling/v1/videos/text2video').models).toEqual([
      'kling-v1',
    ]);
    expect(
      json('{"req_key":"jimeng_vgfm_t2v_l20"}', '/jimeng/?Action=CVSync2AsyncSubmitTask').models,
    ).toEqual(['jimeng_vgfm_t2v_l20']);
    // Elsewhere these names mean nothing.
    expect(json('{"model_name":"x","req_key":"y"}').models).toEqual([]);
  });

  it('LiteLLM evals: completion.model', () => {
    expect(json('{"completion":{"model":"gpt-4o"}}', '/v1/evals').models).toEqual(['gpt-4o']);
  });
});

describe('foldName', () => {
  it('folds as Go matches JSON names to struct fields', () => {
    expect(foldName('model')).toBe('MODEL');
    expect(foldName('MoDeL')).toBe('MODEL');
    expect(foldName('max_to\u212Aen\u017F')).toBe('MAX_TOKENS');
    expect(foldName('modél')).toBeNull();
    expect(foldName('')).toBeNull();
  });

  it('every case spelling of a field is read (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('model', 'max_tokens', 'max_completion_tokens', 'max_output_tokens'),
        fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }),
        fc.nat({ max: 100000 }),
        (name, upper, n) => {
          let spelled = '';
          for (let i = 0; i < name.length; i++) {
            const ch = name[i]!;
            if (!upper[i]) spelled += ch;
            else if (ch === 'k') spelled += '\u212A';
            else if (ch === 's') spelled += '\u017F';
            else spelled += ch.toUpperCase();
          }
          const value = name === 'model' ? JSON.stringify(`m${n}`) : String(n);
          const f = json(`{${JSON.stringify(spelled)}:${value}}`);
          if (name === 'model') expect(f.models).toEqual([`m${n}`]);
          else expect(f.maxTokens).toEqual([n]);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('every relay reading is judged (property)', () => {
  // Go's encoding/json: names folded, the last non-null value wins (null leaves the field);
  // gjson (New API's distributor): the exact name, the first one; Python: the exact name, the last one.
  const spellings = ['model', 'Model', 'MODEL', 'mOdEl', 'messages', 'modelx'];
  const member = fc.tuple(
    fc.constantFrom(...spellings),
    fc.constantFrom<string | null>('a', 'b', 'gpt-4o', null),
  );

  it('the models found hold what Go, gjson and Python read, or the request is refused for a real disagreement', () => {
    fc.assert(
      fc.property(fc.array(member, { maxLength: 6 }), (members) => {
        const text = `{${members.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(k === 'messages' ? [] : v)}`).join(',')}}`;
        const folded = members.filter(([k]) => k.toUpperCase() === 'MODEL');
        const r = addBodyFields({ models: [], maxTokens: [] }, JSON_CT, Buffer.from(text));
        if (!r.ok) {
          expect(new Set(folded.map(([, v]) => v)).size).toBeGreaterThan(1);
          return;
        }
        const exact = members.filter(([k]) => k === 'model');
        const readings = [folded.filter(([, v]) => v !== null).at(-1)?.[1], exact[0]?.[1], exact.at(-1)?.[1]];
        for (const m of readings) if (typeof m === 'string') expect(r.fields.models).toContain(m);
      }),
      { numRuns: 2000 },
    );
  });

  it('every cap any reader takes is collected', () => {
    const cap = fc.tuple(
      fc.constantFrom(
        'max_tokens',
        'MAX_TOKENS',
        'max_to\u212Aens',
        'max_completion_tokens',
        'max_output_tokens',
      ),
      fc.nat({ max: 200000 }),
    );
    fc.assert(
      fc.property(fc.array(cap, { maxLength: 5 }), (caps) => {
        const text = `{${caps.map(([k, v]) => `"${k}":${v}`).join(',')}}`;
        const r = addBodyFields({ models: [], maxTokens: [] }, JSON_CT, Buffer.from(text));
        if (!r.ok) return; // two spellings of one field with different values
        for (const [, v] of caps) expect(r.fields.maxTokens).toContain(v);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('topLevelEntries agrees with JSON.parse (property)', () => {
  const key = fc.oneof(
    fc.string({ maxLength: 8 }),
    fc.string({ unit: 'binary', maxLength: 6 }),
    fc.constantFrom('model', 'MODEL', '__proto__', 'a"b', 'back\\slash', ''),
  );
  const space = fc.constantFrom('', ' ', '\n', '\t', '\r\n  ');

  /** A JSON text whose keys may repeat and may be spelled with \u escapes. */
  const objectText = fc
    .array(fc.tuple(key, fc.jsonValue({ maxDepth: 3 }), fc.boolean(), space), { maxLength: 8 })
    .map((members) => {
      const parts = members.map(([k, v, escape, ws]) => {
        const keyText = escape
          ? `"${Array.from({ length: k.length }, (_, i) => `\\u${k.charCodeAt(i).toString(16).padStart(4, '0')}`).join('')}"`
          : JSON.stringify(k);
        return `${ws}${keyText}${ws}:${ws}${JSON.stringify(v)}${ws}`;
      });
      return { text: `{${parts.join(',')}}`, members };
    });

  it('same keys, in order, each with its own value; the last one is JSON.parse’s', () => {
    fc.assert(
      fc.property(objectText, ({ text, members }) => {
        const entries = topLevelEntries(text);
        expect(entries).not.toBeNull();
        expect(entries!.map((e) => e.key)).toEqual(members.map(([k]) => k));
        const parsed = JSON.parse(text) as Record<string, unknown>;
        const last = new Map<string, unknown>();
        for (const e of entries!) last.set(e.key, JSON.parse(text.slice(e.start, e.end)));
        expect(new Set(last.keys())).toEqual(new Set(Object.keys(parsed)));
        for (const [k, v] of last) expect(v).toEqual(Object.getOwnPropertyDescriptor(parsed, k)!.value);
      }),
      { numRuns: 1000 },
    );
  });

  it('finds the same model as a JSON.parse of the body when names do not repeat', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 })),
        fc.string(),
        (rest, m) => {
          const obj: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(rest))
            if (foldName(k) === null || !/^(model|max_tokens)$/i.test(k)) obj[k] = v;
          const text = JSON.stringify({
            ...obj,
            model: saneName(m),
          });
          const r = addBodyFields({ models: [], maxTokens: [] }, JSON_CT, Buffer.from(text));
          if (!r.ok) return; // a folded duplicate among the random names, or a fallbacks / config field of the wrong type
          const expected = (JSON.parse(text) as { model: string }).model;
          if (expected !== '') expect(r.fields.models).toContain(expected);
        },
      ),
      { numRuns: 500 },
    );
  });
});
