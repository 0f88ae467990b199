/**
 * Which model names and output-token caps one request carries, read the way
 * every supported relay reads them (docs/contract.md 9). A key's `models`
 * and `max_tokens` policy must judge exactly what the relay will act on, so
 * this collects every candidate any relay's parser could pick (the union:
 * the policy then requires all of them to be allowed), and refuses where
 * KeyPin cannot be sure what a relay would read. `docs/policy-fields.md`
 * keeps each rule with the relay source (file and commit) behind it.
 *
 * Pure: no I/O, no Nest. It runs per request only for keys whose policy
 * names models or a token cap.
 */
import { isUtf8 } from 'node:buffer';
import { isPlainPath, originForm, resolvePath } from '../proxy/request-target';

/** Where a policy's `models` / `max_tokens` look in one request. */
export interface RequestFields {
  /** Every model name a relay could act on, in the order found (duplicates removed). Empty: the request names none. */
  models: string[];
  /** Every output-token cap asked for (max_tokens, max_completion_tokens, max_output_tokens, Gemini maxOutputTokens …), as numbers. */
  maxTokens: number[];
}

export type FieldsResult = { ok: true; fields: RequestFields } | { ok: false; message: string };

/**
 * Deepest JSON nesting (objects and arrays open at once) KeyPin reads. orjson
 * stops at 1024 and Python's json at its recursion limit (about 1000 less the
 * server's own stack), after which LiteLLM reads an empty body while Go
 * relays still read the fields: deeper bodies are refused.
 */
export const MAX_JSON_DEPTH = 256;

/**
 * Longest run of digits in a JSON number. Python refuses to convert integers
 * of more than 4300 digits (sys.int_info.default_max_str_digits), which makes
 * LiteLLM read the whole body as empty; longer numbers are refused.
 */
export const MAX_NUMBER_DIGITS = 4300;

// --- the request target -------------------------------------------------------

/** What the body means on a given path (relays that read path-specific body fields). */
interface BodyContext {
  /** New API Midjourney submit whose model comes from the body: `change` (body `action`) or `action` (body `customId`). */
  mj: 'change' | 'action' | null;
  /** New API's Kling adapter: `model_name` (else `model`). */
  kling: boolean;
  /** New API's Jimeng adapter: `req_key`. */
  jimeng: boolean;
  /** LiteLLM `/evals` routes: `completion.model`. */
  evals: boolean;
  /** Models New API / One API use when the body names none (see DEFAULT_MODELS). */
  defaults: readonly string[] | null;
  /** Those of `defaults` fieldsFromTarget added (nothing else in the target named them). */
  addedDefaults: string[];
}

/** Set by fieldsFromTarget for the few paths whose body fields differ; read by addBodyFields. */
const bodyContexts = new WeakMap<RequestFields, BodyContext>();

/** Models named by the request target alone (path and query); no body needed. `url` is the origin-form target, e.g. `/v1beta/models/gemini-pro:generateContent?key=…`. */
export function fieldsFromTarget(target: string): RequestFields {
  const fields: RequestFields = { models: [], maxTokens: [] };
  // An absolute-form target (`http://host/path`) names the same path.
  const url = target.charCodeAt(0) === 0x2f ? target : (originForm(target) ?? target);
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  // Both relays route on the percent-decoded path (Go's URL.Path, Starlette's
  // scope["path"]); a lenient server in front may also merge `//`, drop `;`
  // parameters and dot segments: both readings count.
  const path = decodeBytes(rawPath, false);
  let ctx = pathFields(path, fields, null);
  if (!isPlainPath(rawPath)) {
    const resolved = decodeBytes(resolvePath(rawPath), false);
    if (resolved !== path) ctx = pathFields(resolved, fields, ctx);
  }
  if (q !== -1) queryFields(url, q + 1, fields);
  if (ctx !== null) {
    // Until a body names a model (addBodyFields takes them out then), the
    // relay's default for the path is what it acts on.
    for (const d of ctx.defaults ?? []) {
      if (fields.models.includes(d)) continue;
      fields.models.push(d);
      ctx.addedDefaults.push(d);
    }
    bodyContexts.set(fields, ctx);
  }
  return fields;
}

/**
 * Models New API and One API substitute when the body names none, by path
 * prefix: New API's distributor (text-moderation-stable, dall-e, tts-1,
 * whisper-1) and relay handlers (text-moderation-latest,
 * omni-moderation-latest), One API's getRequestModel (dall-e-2).
 */
const DEFAULT_MODELS: readonly (readonly [string, readonly string[]])[] = [
  ['/v1/moderations', ['text-moderation-stable', 'text-moderation-latest', 'omni-moderation-latest']],
  ['/v1/images/generations', ['dall-e', 'dall-e-2']],
  ['/v1/audio/speech', ['tts-1']],
  ['/v1/audio/transcriptions', ['whisper-1']],
  ['/v1/audio/translations', ['whisper-1']],
];

/**
 * Operations after LiteLLM's `{model:path}` route parameter, in the order
 * checked: FastAPI matches routes in order and the chat routes come first,
 * so `/chat/completions` wins over `/completions`.
 */
const PATH_MODEL_SUFFIXES = [
  '/chat/completions',
  '/completions',
  '/embeddings',
  '/images/generations',
  '/images/edits',
  '/images/variations',
  '/audio/transcriptions',
  '/audio/translations',
  '/audio/speech',
  '/responses',
];

/**
 * New API Midjourney modes by path suffix (relay/constant/relay_mode.go, in
 * its order): the model the path decides, 'change' / 'action' where the body
 * does, null for none.
 */
const MJ_PATH_MODELS: readonly (readonly [string, string | null])[] = [
  ['/mj/submit/action', 'action'],
  ['/mj/submit/modal', 'mj_modal'],
  ['/mj/submit/shorten', 'mj_shorten'],
  ['/mj/insight-face/swap', 'swap_face'],
  ['/submit/upload-discord-images', 'mj_upload'],
  ['/mj/submit/imagine', 'mj_imagine'],
  ['/mj/submit/video', 'mj_video'],
  ['/mj/submit/edits', 'mj_edits'],
  ['/mj/submit/blend', 'mj_blend'],
  ['/mj/submit/describe', 'mj_describe'],
  ['/mj/notify', null],
  ['/mj/submit/change', 'change'],
  ['/mj/submit/simple-change', 'change'],
];

/** Models one decoded path names; returns the body context (merged into `ctx`). */
function pathFields(path: string, fields: RequestFields, ctx: BodyContext | null): BodyContext | null {
  // New API (distributor.go): Gemini paths, from the first "/models/" to the first ':' or the end.
  if (path.startsWith('/v1beta/models/') || path.startsWith('/v1/models/')) {
    const start = path.indexOf('/models/') + 8;
    const colon = path.indexOf(':', start);
    addTargetModel(fields, colon === -1 ? path.slice(start) : path.slice(start, colon));
  }
  // LiteLLM (auth_utils.get_model_from_request): re.search(r"/(?:v1beta|beta)/models/([^:]+):")
  // and re.search(r"^/models/([^:]+):"); its route parameter `{model_name}`
  // ([^/]+, greedy) runs to the last ':' instead.
  for (const marker of ['/v1beta/models/', '/beta/models/']) {
    for (let at = path.indexOf(marker); at !== -1; at = path.indexOf(marker, at + 1)) {
      googleModel(path, at + marker.length, fields);
    }
  }
  if (path.startsWith('/models/')) googleModel(path, 8, fields);
  // LiteLLM Vertex AI pass-through: a route starting "/vertex" (any case), re.search(r"/models/([^:]+)").
  if (path.length > 7 && path.slice(0, 7).toLowerCase() === '/vertex') {
    const at = path.indexOf('/models/');
    if (at !== -1) {
      const colon = path.indexOf(':', at + 8);
      addTargetModel(fields, colon === -1 ? path.slice(at + 8) : path.slice(at + 8, colon));
    }
  }
  // Azure style: LiteLLM's auth reads the first segment (re.match(r"/openai/deployments/([^/]+)")),
  // its handlers the greedy `{model:path}` before the operation.
  if (path.startsWith('/openai/deployments/')) {
    const rest = path.slice(20);
    const slash = rest.indexOf('/');
    addTargetModel(fields, slash === -1 ? rest : rest.slice(0, slash));
    pathModelBeforeSuffix(rest, fields);
  }
  // `/v1/engines/:model/embeddings` (New API, One API) and LiteLLM's `/engines/{model:path}/…`.
  if (path.startsWith('/engines/')) pathModelBeforeSuffix(path.slice(9), fields);
  else if (path.startsWith('/v1/engines/')) pathModelBeforeSuffix(path.slice(12), fields);
  // New API Suno: `/suno/submit/:action` → "suno_" + lower(action).
  if (path.startsWith('/suno/submit/')) {
    const action = path.slice(13);
    if (action !== '' && !action.includes('/')) addTargetModel(fields, `suno_${action.toLowerCase()}`);
  }
  // New API Midjourney: any path containing "/mj/", the mode by suffix.
  if (path.includes('/mj/')) {
    for (const [suffix, model] of MJ_PATH_MODELS) {
      if (!path.endsWith(suffix)) continue;
      if (model === 'change' || model === 'action') ctx = withContext(ctx, { mj: model });
      else if (model !== null) addTargetModel(fields, model);
      break;
    }
  }
  for (const [prefix, models] of DEFAULT_MODELS) {
    if (path.startsWith(prefix)) ctx = withContext(ctx, { defaults: models });
  }
  if (path.startsWith('/kling/v1/')) ctx = withContext(ctx, { kling: true });
  if (path.startsWith('/jimeng/')) ctx = withContext(ctx, { jimeng: true });
  if (path.toLowerCase().includes('/evals')) ctx = withContext(ctx, { evals: true });
  return ctx;
}

function withContext(ctx: BodyContext | null, add: Partial<BodyContext>): BodyContext {
  const base = ctx ?? {
    mj: null,
    kling: false,
    jimeng: false,
    evals: false,
    defaults: null,
    addedDefaults: [],
  };
  return { ...base, ...add, mj: add.mj ?? base.mj, defaults: add.defaults ?? base.defaults };
}

/** The model of a Google-style path at `start`: to the first ':' (LiteLLM's auth) and to the last (its route parameter). */
function googleModel(path: string, start: number, fields: RequestFields): void {
  const colon = path.indexOf(':', start);
  if (colon === -1) return;
  addTargetModel(fields, path.slice(start, colon));
  const last = path.lastIndexOf(':');
  if (last > colon && !path.includes('/', start)) addTargetModel(fields, path.slice(start, last));
}

/** `{model:path}` followed by a known operation: the greedy model before it. */
function pathModelBeforeSuffix(rest: string, fields: RequestFields): void {
  for (const suffix of PATH_MODEL_SUFFIXES) {
    if (rest.length > suffix.length && rest.endsWith(suffix)) {
      addTargetModel(fields, rest.slice(0, rest.length - suffix.length));
      return;
    }
  }
}

const QUERY_MODEL = /model/i;

/**
 * Query `model` (the Realtime WebSocket, New API's `c.Query`; LiteLLM copies
 * every query parameter into the request it authorises) and LiteLLM's
 * `target_model_names`: every occurrence, names and values percent-decoded
 * with `+` as a space, pairs split on `&` and `;`, names compared without
 * case (LiteLLM looks them up so on its file routes).
 */
function queryFields(url: string, from: number, fields: RequestFields): void {
  const query = url.slice(from);
  if (!QUERY_MODEL.test(query) && !query.includes('%')) return;
  for (const pair of query.split(/[&;]/)) {
    const eq = pair.indexOf('=');
    if (eq < 5) continue;
    const name = decodeBytes(pair.slice(0, eq), true).toLowerCase();
    if (name === 'model' || name === 'target_model_names')
      addTargetModel(fields, decodeBytes(pair.slice(eq + 1), true));
  }
}

/** A model from the target: nothing can be refused here, so every reading is added and judged. */
function addTargetModel(fields: RequestFields, name: string): void {
  addModelName(fields.models, name);
}

/**
 * A model name and, when it holds commas, each part stripped as Python
 * strips: LiteLLM reads "a,b" as the two models a and b (it splits every
 * model it authorises on ',' and strips each; its router calls each of
 * them), every other relay as one name.
 */
function addModelName(models: string[], name: string): void {
  if (name === '') return;
  if (!models.includes(name)) models.push(name);
  const parts = name.split(',');
  for (const part of parts) {
    const p = pyStrip(part);
    if (p !== '' && !models.includes(p)) models.push(p);
  }
}

// --- the body -----------------------------------------------------------------

/**
 * Adds what the body names. `contentType` is the raw Content-Type header value (or undefined), `body` the whole buffered body.
 * Returns ok:false (KeyPin refuses with 400) where a relay could read a model or cap KeyPin cannot be sure of:
 * e.g. a body that claims or looks like JSON but does not parse, conflicting duplicate `model` entries, a token cap that is not a plain non-negative number, a multipart body whose boundary cannot be found.
 * On ok:false, `into` may hold part of what was found.
 */
export function addBodyFields(
  into: RequestFields,
  contentType: string | undefined,
  body: Buffer,
): FieldsResult {
  if (body.length === 0) return { ok: true, fields: into };
  const ct = contentType ?? '';
  const lower = ct.toLowerCase();
  const media = mediaTypeOf(lower.trimStart());
  if (UNREADABLE_MEDIA_TYPES.has(media)) {
    return fail(`A request body of type ${media} cannot be checked against this API key's policy.`);
  }
  const c = new Collector(into, bodyContexts.get(into) ?? null);
  // Each relay picks its reading by Content-Type; every reading that applies is taken.
  if (lower.includes('multipart/form-data')) {
    const boundary = multipartBoundary(ct);
    if (boundary.error !== null) return fail(boundary.error);
    if (!readMultipart(body, boundary.value, c)) return fail(c.error!);
  }
  if (lower.includes('application/x-www-form-urlencoded')) {
    if (!readUrlEncoded(body, c)) return fail(c.error!);
  }
  // LiteLLM parses every body whose Content-Type lacks "form" as JSON; New
  // API and One API those starting "application/json".
  if (!ct.includes('form') || ct.startsWith('application/json')) {
    if (!readJson(body, lower.includes('json'), c)) return fail(c.error!);
  }
  if (!c.finish()) return fail(c.error!);
  return { ok: true, fields: into };
}

function fail(message: string): FieldsResult {
  return { ok: false, message };
}

/**
 * Media types One API hands to Gin's binding (XML, YAML, TOML, MessagePack,
 * Protocol Buffers): it would read a model from such a body, KeyPin cannot.
 */
const UNREADABLE_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/xml',
  'text/xml',
  'application/x-yaml',
  'application/yaml',
  'application/toml',
  'application/x-msgpack',
  'application/msgpack',
  'application/x-protobuf',
]);

/** The media type as Gin's filterFlags cuts it (at ' ' or ';'), tabs too. */
function mediaTypeOf(ct: string): string {
  let end = ct.length;
  for (let i = 0; i < ct.length; i++) {
    const ch = ct.charCodeAt(i);
    if (ch === 59 || ch === 32 || ch === 9) {
      end = i;
      break;
    }
  }
  return end === ct.length ? ct : ct.slice(0, end);
}

// --- what the fields mean -------------------------------------------------------

/**
 * Names (folded as Go's encoding/json folds them) of the fields read at the
 * top level of a JSON body or a form, and what they are.
 */
type FieldKind = 'model' | 'models' | 'fallbacks' | 'cap' | 'config' | 'requests' | 'extra';

const TOP_FIELDS: ReadonlyMap<string, FieldKind> = new Map<string, FieldKind>([
  ['MODEL', 'model'],
  ['TARGET_MODEL_NAMES', 'models'],
  ['FALLBACKS', 'fallbacks'],
  ['CONTEXT_WINDOW_FALLBACKS', 'fallbacks'],
  ['CONTENT_POLICY_FALLBACKS', 'fallbacks'],
  ['MAX_TOKENS', 'cap'],
  ['MAX_COMPLETION_TOKENS', 'cap'],
  ['MAX_OUTPUT_TOKENS', 'cap'],
  ['MAX_TOKENS_TO_SAMPLE', 'cap'],
  ['MAX_RESPONSE_OUTPUT_TOKENS', 'cap'],
  ['GENERATIONCONFIG', 'config'],
  ['GENERATION_CONFIG', 'config'],
  ['CONFIG', 'config'],
  ['REQUESTS', 'requests'],
  ['EXTRA_BODY', 'extra'],
]);

/** Inside a Gemini generation config (camelCase and the snake_case New API and Google also accept). */
const CONFIG_CAPS: ReadonlySet<string> = new Set(['MAXOUTPUTTOKENS', 'MAX_OUTPUT_TOKENS']);

const LONGEST_NAME = 26;

/**
 * A field name folded as Go's encoding/json matches struct fields: ASCII
 * letters to upper case, KELVIN SIGN (U+212A) to K and LATIN SMALL LETTER
 * LONG S (U+017F) to S (the only non-ASCII runes whose case orbit holds an
 * ASCII letter); null for any other non-ASCII name, which can match none of
 * the ASCII names read here.
 */
export function foldName(name: string): string | null {
  const n = name.length;
  if (n === 0 || n > LONGEST_NAME) return null;
  let plain = true;
  for (let i = 0; i < n; i++) {
    const ch = name.charCodeAt(i);
    if (ch >= 97 && ch <= 122) plain = false;
    else if (ch >= 0x80) {
      if (ch !== 0x212a && ch !== 0x17f) return null;
      plain = false;
    }
  }
  if (plain) return name;
  let out = '';
  for (let i = 0; i < n; i++) {
    const ch = name.charCodeAt(i);
    if (ch >= 97 && ch <= 122) out += String.fromCharCode(ch - 32);
    else if (ch === 0x212a) out += 'K';
    else if (ch === 0x17f) out += 'S';
    else out += name[i];
  }
  return out;
}

/** Collects what the readings find, into the caller's fields. */
class Collector {
  error: string | null = null;
  /** Midjourney `action` values seen (change mode), `customId` values (action mode). */
  private readonly mjActions: string[] = [];
  private readonly mjCustomIds: string[] = [];
  /** Every name the body gave, and whether one came as exactly `model` (what every relay reads). */
  private readonly named: string[] = [];
  private namedExactModel = false;

  constructor(
    readonly fields: RequestFields,
    readonly ctx: BodyContext | null,
  ) {}

  /** Records why the request is refused (field names in it shown as printable ASCII) and returns false. */
  refuse(message: string): false {
    this.error ??= message.replace(/[^\x20-\x7e]/g, '?');
    return false;
  }

  model(name: string, where: string): boolean {
    if (!isSaneName(name)) return this.refuse(`The request's ${where} is not a usable model name.`);
    addModelName(this.fields.models, name);
    addModelName(this.named, name);
    return true;
  }

  /** A value found under the exact name `model` (JSON or form): the relays' defaults no longer apply. */
  exactModel(name: string): void {
    if (name !== '') this.namedExactModel = true;
  }

  cap(n: number): void {
    const v = n === 0 ? 0 : n; // -0 → 0
    if (!this.fields.maxTokens.includes(v)) this.fields.maxTokens.push(v);
  }

  mjAction(action: string): boolean {
    if (!/^[\x21-\x7e]*$/.test(action))
      return this.refuse('The request names a Midjourney action KeyPin cannot read.');
    this.mjActions.push(action);
    return true;
  }

  mjCustomId(id: string): void {
    this.mjCustomIds.push(id);
  }

  /** Models derived after all readings (New API Midjourney), and the path's defaults dropped once the body named a model. */
  finish(): boolean {
    const ctx = this.ctx;
    if (ctx === null) return true;
    if (this.namedExactModel) {
      for (const d of ctx.addedDefaults) {
        const at = this.fields.models.indexOf(d);
        if (at !== -1 && !this.named.includes(d)) this.fields.models.splice(at, 1);
      }
    }
    if (ctx.mj === null) return true;
    if (ctx.mj === 'change') {
      // service/midjourney.go GetMjRequestModel: "mj_" + lower(action), "mj_" when none.
      if (this.mjActions.length === 0) return this.model('mj_', 'Midjourney action');
      for (const a of this.mjActions)
        if (!this.model(`mj_${a.toLowerCase()}`, 'Midjourney action')) return false;
      return true;
    }
    for (const id of this.mjCustomIds) {
      const action = plusAction(id);
      if (action === KEEP_BODY_ACTION) {
        if (this.mjActions.length === 0 && !this.model('mj_', 'Midjourney action')) return false;
        for (const a of this.mjActions)
          if (!this.model(`mj_${a.toLowerCase()}`, 'Midjourney action')) return false;
      } else if (action !== null && !this.model(`mj_${action}`, 'Midjourney action')) return false;
    }
    return true;
  }
}

/** plusAction's answer where New API keeps the body's own `action`. */
const KEEP_BODY_ACTION = '';

/**
 * The lower-case action New API derives from a Midjourney Plus `customId`
 * (CoverPlusActionToNormalAction); KEEP_BODY_ACTION where it keeps the
 * body's own `action`; null where New API refuses the request.
 */
function plusAction(customId: string): string | null {
  const parts = customId.split('::');
  if (parts.length < 2) return null;
  const action = parts[1] === 'JOB' ? parts[2] : parts[1];
  if (action === undefined || action === '') return null;
  const indexed = (): boolean => parts.length > 3 && /^[+-]?[0-9]+$/.test(parts[3]!);
  if (action.includes('upsample')) return indexed() ? 'upscale' : null;
  if (action.includes('variation')) {
    if (action === 'variation') return indexed() ? 'variation' : null;
    if (action === 'low_variation') return 'low_variation';
    if (action === 'high_variation') return 'high_variation';
    return KEEP_BODY_ACTION;
  }
  if (action.includes('pan')) return 'pan';
  if (action.includes('reroll')) return 'reroll';
  if (action === 'Outpaint') return 'zoom';
  if (action === 'CustomZoom') return 'custom_zoom';
  if (action === 'Inpaint') return 'inpaint';
  return null;
}

/** No control characters and no lone surrogates: a name every relay reads the same. */
function isSaneName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    if (ch < 0x20 || ch === 0x7f) return false;
  }
  return isWellFormed(name);
}

/** No unpaired UTF-16 surrogate (String.prototype.isWellFormed, not in this lib target). */
function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch < 0xd800 || ch > 0xdfff) continue;
    if (ch > 0xdbff) return false;
    const next = s.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/** Which context-specific field a folded name is on this path, if any. */
function contextField(
  ctx: BodyContext | null,
  folded: string,
): 'model' | 'action' | 'customId' | 'completion' | null {
  if (ctx === null) return null;
  if (ctx.kling && folded === 'MODEL_NAME') return 'model';
  if (ctx.jimeng && folded === 'REQ_KEY') return 'model';
  if (ctx.mj !== null && folded === 'ACTION') return 'action';
  if (ctx.mj === 'action' && folded === 'CUSTOMID') return 'customId';
  if (ctx.evals && folded === 'COMPLETION') return 'completion';
  return null;
}

// --- JSON ---------------------------------------------------------------------

/**
 * The JSON reading. Go (New API's relay handlers, One API) decodes with
 * encoding/json: names matched without case, the last duplicate wins; New
 * API's distributor reads `model` with gjson: exact name, the first wins;
 * LiteLLM with orjson, falling back to Python's json (which also takes NaN
 * and Infinity): exact names, the last wins. Every top-level name that folds
 * to a field is read, and duplicates must agree.
 */
function readJson(body: Buffer, claimsJson: boolean, c: Collector): boolean {
  let i = 0;
  while (i < body.length && isJsonSpace(body[i]!)) i++;
  if (i === body.length)
    return claimsJson ? c.refuse('The request body is empty but declared as JSON.') : true;
  const first = body[i]!;
  const looksObject = first === 0x7b || (first === 0xef && body[i + 1] === 0xbb && body[i + 2] === 0xbf);
  // Only an object names fields; a body that cannot be one is read by no relay
  // (it rejects it, or acts as on an empty request).
  if (!looksObject && !claimsJson) return true;
  if (!isUtf8(body)) return c.refuse('The request body is not valid UTF-8.');
  const text = body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return c.refuse('The request body is not valid JSON.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return true;
  const entries: JsonEntry[] = [];
  const end = scanObject(text, i, 0, entries);
  if (end < 0) return c.refuse(scanErrorMessage(end));
  return readJsonFields(text, entries, c, true);
}

function readJsonFields(text: string, entries: readonly JsonEntry[], c: Collector, top: boolean): boolean {
  const seen = new DuplicateCheck(text);
  for (const e of entries) {
    const folded = foldName(e.key);
    if (folded === null) continue;
    const kind = TOP_FIELDS.get(folded) ?? null;
    const special = kind === null ? contextField(c.ctx, folded) : null;
    if (kind === null && special === null) continue;
    if (kind === 'extra' && !top) continue;
    if (!seen.agrees(folded, e)) return c.refuse(`The request names "${e.key}" twice with different values.`);
    if (kind !== null) {
      if (!readJsonField(kind, text, e, c, top)) return false;
    } else if (!readJsonSpecial(special!, text, e, c)) return false;
  }
  return true;
}

function readJsonField(kind: FieldKind, text: string, e: JsonEntry, c: Collector, top = false): boolean {
  const first = text.charCodeAt(e.start);
  switch (kind) {
    case 'model': {
      const v = jsonValue(text, e);
      if (v === null) return true;
      if (typeof v !== 'string') return c.refuse(`The request's "${e.key}" is not a string.`);
      if (e.key === 'model' && top) c.exactModel(v);
      return c.model(v, `"${e.key}"`);
    }
    case 'models': {
      const v = jsonValue(text, e);
      if (v === null) return true;
      if (typeof v === 'string') return c.model(v, `"${e.key}"`);
      if (!Array.isArray(v))
        return c.refuse(`The request's "${e.key}" is neither a string nor a list of strings.`);
      for (const m of v) {
        if (typeof m !== 'string') return c.refuse(`The request's "${e.key}" is not a list of strings.`);
        if (!c.model(m, `"${e.key}"`)) return false;
      }
      return true;
    }
    case 'fallbacks':
      return fallbackModels(jsonValue(text, e), e.key, c);
    case 'cap': {
      const v = jsonValue(text, e);
      if (v === null) return true;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        return c.refuse(`The request's "${e.key}" is not a non-negative number.`);
      }
      c.cap(v);
      return true;
    }
    case 'config':
      return first === 0x7b ? readConfig(text, e, c) : true;
    case 'requests': {
      if (first !== 0x5b) return true;
      const items: JsonEntry[] = [];
      const end = scanArray(text, e.start, 1, items);
      if (end < 0) return c.refuse(scanErrorMessage(end));
      for (const item of items) {
        if (text.charCodeAt(item.start) !== 0x7b) continue;
        const inner: JsonEntry[] = [];
        const innerEnd = scanObject(text, item.start, 2, inner);
        if (innerEnd < 0) return c.refuse(scanErrorMessage(innerEnd));
        const seen = new DuplicateCheck(text);
        for (const f of inner) {
          const folded = foldName(f.key);
          if (folded === null || TOP_FIELDS.get(folded) !== 'config') continue;
          if (!seen.agrees(folded, f))
            return c.refuse(`The request names "${f.key}" twice with different values.`);
          if (text.charCodeAt(f.start) === 0x7b && !readConfig(text, f, c)) return false;
        }
      }
      return true;
    }
    case 'extra': {
      // OpenAI's SDK (LiteLLM's OpenAI client) merges `extra_body` into the request it sends.
      if (first !== 0x7b) return true;
      const inner: JsonEntry[] = [];
      const end = scanObject(text, e.start, 1, inner);
      if (end < 0) return c.refuse(scanErrorMessage(end));
      return readJsonFields(text, inner, c, false);
    }
  }
}

function readJsonSpecial(
  special: 'model' | 'action' | 'customId' | 'completion',
  text: string,
  e: JsonEntry,
  c: Collector,
): boolean {
  const v = jsonValue(text, e);
  switch (special) {
    case 'model':
      // New API's Kling / Jimeng adapters read these from a map: anything but a string is ignored.
      return typeof v === 'string' ? c.model(v, `"${e.key}"`) : true;
    case 'action':
      if (v === null) return true;
      if (typeof v !== 'string') return c.refuse(`The request's "${e.key}" is not a string.`);
      return c.mjAction(v);
    case 'customId':
      if (v === null) return true;
      if (typeof v !== 'string') return c.refuse(`The request's "${e.key}" is not a string.`);
      c.mjCustomId(v);
      return true;
    case 'completion': {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return true;
      const m = (v as Record<string, unknown>)['model'];
      return typeof m === 'string' ? c.model(m, '"completion.model"') : true;
    }
  }
}

/** Caps in a Gemini generation config object. */
function readConfig(text: string, e: JsonEntry, c: Collector): boolean {
  const inner: JsonEntry[] = [];
  const end = scanObject(text, e.start, 1, inner);
  if (end < 0) return c.refuse(scanErrorMessage(end));
  const seen = new DuplicateCheck(text);
  for (const f of inner) {
    const folded = foldName(f.key);
    if (folded === null || !CONFIG_CAPS.has(folded)) continue;
    if (!seen.agrees(folded, f)) return c.refuse(`The request names "${f.key}" twice with different values.`);
    if (!readJsonField('cap', text, f, c)) return false;
  }
  return true;
}

/**
 * LiteLLM's client-side fallbacks: each a model name, or an object naming
 * one in `model`; the router's own form `{"a": ["b", "c"]}` names a, b and c.
 */
function fallbackModels(v: unknown, key: string, c: Collector): boolean {
  if (typeof v === 'string') return c.model(v, `"${key}"`);
  const list = Array.isArray(v) ? (v as unknown[]) : v !== null && typeof v === 'object' ? [v] : [];
  for (const item of list) {
    if (typeof item === 'string') {
      if (!c.model(item, `"${key}"`)) return false;
      continue;
    }
    if (item === null || typeof item !== 'object' || Array.isArray(item)) continue;
    for (const [k, val] of Object.entries(item as Record<string, unknown>)) {
      if (k === 'model') {
        if (typeof val === 'string' && !c.model(val, `"${key}"`)) return false;
      } else if (Array.isArray(val) && val.length > 0 && val.every((x) => typeof x === 'string')) {
        if (!c.model(k, `"${key}"`)) return false;
        for (const x of val) if (!c.model(x, `"${key}"`)) return false;
      }
    }
  }
  return true;
}

function jsonValue(text: string, e: JsonEntry): unknown {
  return JSON.parse(text.slice(e.start, e.end)) as unknown;
}

/** Duplicates (names that fold alike, in one object or form) must carry the same value. */
class DuplicateCheck {
  private first: Map<string, JsonEntry | string> | null = null;

  constructor(private readonly text: string) {}

  agrees(folded: string, value: JsonEntry | string): boolean {
    this.first ??= new Map();
    const prev = this.first.get(folded);
    if (prev === undefined) {
      this.first.set(folded, value);
      return true;
    }
    if (typeof prev === 'string' || typeof value === 'string') return prev === value;
    const a = this.text.slice(prev.start, prev.end);
    const b = this.text.slice(value.start, value.end);
    return a === b || JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  }
}

// --- the JSON scanner -------------------------------------------------------------

/** One member of a JSON object (or one element of an array, with key ''): its value at text[start, end). */
export interface JsonEntry {
  key: string;
  start: number;
  end: number;
}

const TOO_DEEP = -2;
const NUMBER_TOO_LONG = -3;
const MALFORMED = -4;

function scanErrorMessage(code: number): string {
  if (code === TOO_DEEP) return `The request body nests JSON deeper than ${MAX_JSON_DEPTH} levels.`;
  if (code === NUMBER_TOO_LONG)
    return `The request body holds a number longer than ${MAX_NUMBER_DIGITS} digits.`;
  return 'The request body is not valid JSON.';
}

/**
 * The members of the object whose value starts the JSON text (after white
 * space), in document order, duplicates included; null when the text is not
 * an object or is nested deeper than MAX_JSON_DEPTH. The text must be valid
 * JSON (addBodyFields has JSON.parse check it first): this only walks it.
 */
export function topLevelEntries(text: string): JsonEntry[] | null {
  const i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== 0x7b) return null;
  const out: JsonEntry[] = [];
  return scanObject(text, i, 0, out) < 0 ? null : out;
}

/**
 * Walks the object at text[i] ('{') enclosed by `enclosing` containers,
 * pushing its members; returns the index after it, or a negative code.
 */
function scanObject(text: string, i: number, enclosing: number, out: JsonEntry[]): number {
  if (enclosing + 1 > MAX_JSON_DEPTH) return TOO_DEEP;
  let j = skipSpace(text, i + 1);
  if (text.charCodeAt(j) === 0x7d) return j + 1;
  for (;;) {
    if (text.charCodeAt(j) !== 0x22) return MALFORMED;
    const keyEnd = stringEnd(text, j);
    if (keyEnd < 0) return MALFORMED;
    const raw = text.slice(j + 1, keyEnd - 1);
    const key = raw.includes('\\') ? (JSON.parse(text.slice(j, keyEnd)) as string) : raw;
    j = skipSpace(text, keyEnd);
    if (text.charCodeAt(j) !== 0x3a) return MALFORMED;
    j = skipSpace(text, j + 1);
    const end = valueEnd(text, j, enclosing + 1);
    if (end < 0) return end;
    out.push({ key, start: j, end });
    j = skipSpace(text, end);
    const ch = text.charCodeAt(j);
    if (ch === 0x2c) j = skipSpace(text, j + 1);
    else return ch === 0x7d ? j + 1 : MALFORMED;
  }
}

/** Like scanObject, for the array at text[i] ('['): its elements, with key ''. */
function scanArray(text: string, i: number, enclosing: number, out: JsonEntry[]): number {
  if (enclosing + 1 > MAX_JSON_DEPTH) return TOO_DEEP;
  let j = skipSpace(text, i + 1);
  if (text.charCodeAt(j) === 0x5d) return j + 1;
  for (;;) {
    const end = valueEnd(text, j, enclosing + 1);
    if (end < 0) return end;
    out.push({ key: '', start: j, end });
    j = skipSpace(text, end);
    const ch = text.charCodeAt(j);
    if (ch === 0x2c) j = skipSpace(text, j + 1);
    else return ch === 0x5d ? j + 1 : MALFORMED;
  }
}

/** The index after the value starting at text[i], itself inside `enclosing` containers. */
function valueEnd(text: string, i: number, enclosing: number): number {
  const first = text.charCodeAt(i);
  if (first === 0x22) return stringEnd(text, i);
  if (first !== 0x7b && first !== 0x5b) return scalarEnd(text, i);
  let level = 0;
  for (let j = i; j < text.length; j++) {
    const ch = text.charCodeAt(j);
    if (ch === 0x22) {
      const e = stringEnd(text, j);
      if (e < 0) return MALFORMED;
      j = e - 1;
    } else if (ch === 0x7b || ch === 0x5b) {
      if (enclosing + level + 1 > MAX_JSON_DEPTH) return TOO_DEEP;
      level++;
    } else if (ch === 0x7d || ch === 0x5d) {
      if (--level === 0) return j + 1;
    } else if (ch >= 0x30 && ch <= 0x39) {
      let k = j + 1;
      while (isDigit(text.charCodeAt(k))) k++;
      if (k - j > MAX_NUMBER_DIGITS) return NUMBER_TOO_LONG;
      j = k - 1;
    }
  }
  return MALFORMED;
}

/** A number, true, false or null: to the next delimiter. */
function scalarEnd(text: string, i: number): number {
  let j = i;
  let run = 0;
  for (; j < text.length; j++) {
    const ch = text.charCodeAt(j);
    if (ch === 0x2c || ch === 0x7d || ch === 0x5d || ch === 0x20 || ch === 0x09 || ch === 0x0a || ch === 0x0d)
      break;
    if (isDigit(ch)) {
      if (++run > MAX_NUMBER_DIGITS) return NUMBER_TOO_LONG;
    } else run = 0;
  }
  return j === i ? MALFORMED : j;
}

/** The index after the string whose opening quote is text[i]. */
function stringEnd(text: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q < 0) return MALFORMED;
    let backslashes = 0;
    for (let b = q - 1; b > i && text.charCodeAt(b) === 0x5c; b--) backslashes++;
    if ((backslashes & 1) === 0) return q + 1;
    from = q + 1;
  }
}

function skipSpace(text: string, i: number): number {
  for (;;) {
    const ch = text.charCodeAt(i);
    if (ch === 0x20 || ch === 0x09 || ch === 0x0a || ch === 0x0d) i++;
    else return i;
  }
}

function isJsonSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

function isDigit(ch: number): boolean {
  return ch >= 0x30 && ch <= 0x39;
}

// --- forms ---------------------------------------------------------------------

/**
 * A form field (urlencoded or multipart). New API turns a form into a map,
 * then JSON, then its request struct (so names fold as in JSON, and a field
 * given twice fails); Gin's form binding (One API) takes the first value;
 * Starlette (LiteLLM) the last, and its `get_form_data` reads `name[]` as
 * `name`. Values are strings: a cap must be plain decimal digits.
 */
function formField(rawName: string, value: () => string | null, seen: DuplicateCheck, c: Collector): boolean {
  const name = rawName.endsWith('[]') ? rawName.slice(0, -2) : rawName;
  const folded = foldName(name);
  if (folded === null) return true;
  const kind = TOP_FIELDS.get(folded) ?? null;
  const special = kind === null ? contextField(c.ctx, folded) : null;
  if (special === 'completion') return true;
  if (kind === null && special === null) return true;
  if (kind === 'config' || kind === 'requests' || kind === 'extra') return true;
  const v = value();
  if (v === null) return c.refuse(`The request's form field "${name}" is not plain UTF-8 text.`);
  if (!seen.agrees(folded, v)) return c.refuse(`The request names "${name}" twice with different values.`);
  switch (kind ?? special) {
    case 'cap':
      if (!/^[0-9]+$/.test(v)) return c.refuse(`The request's "${name}" is not a non-negative number.`);
      c.cap(Number(v));
      return true;
    case 'action':
      return c.mjAction(v);
    case 'customId':
      c.mjCustomId(v);
      return true;
    default:
      if (rawName === 'model') c.exactModel(v);
      return c.model(v, `"${name}"`);
  }
}

/**
 * application/x-www-form-urlencoded: pairs split on '&' (and ';', which
 * python-multipart also splits on), names and values percent-decoded with
 * '+' as a space. A relevant value with raw (unescaped) non-ASCII bytes is
 * refused: Go reads them as UTF-8, Starlette as Latin-1.
 */
function readUrlEncoded(body: Buffer, c: Collector): boolean {
  const text = body.toString('latin1');
  const seen = new DuplicateCheck('');
  for (const pair of text.split(/[&;]/)) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    const name = decodeBytes(rawName, true);
    const value = (): string | null => {
      for (let i = 0; i < rawValue.length; i++) if (rawValue.charCodeAt(i) >= 0x80) return null;
      const bytes = percentDecode(rawValue, true);
      return isUtf8(bytes) ? bytes.toString('utf8') : null;
    };
    if (!formField(name, value, seen, c)) return false;
  }
  return true;
}

/**
 * The boundary of a multipart Content-Type: exactly one `boundary` parameter,
 * a token or a quoted string without backslashes (Go's mime.ParseMediaType
 * and Python's email parser unescape those differently).
 */
function multipartBoundary(ct: string): { value: string; error: null } | { value: ''; error: string } {
  const params = mediaParams(ct);
  if (params === null) return { value: '', error: 'The multipart Content-Type cannot be read.' };
  let found: string | null = null;
  for (const [name, value, quoted] of params) {
    if (name.startsWith('boundary*'))
      return { value: '', error: 'The multipart boundary is in a form KeyPin does not read.' };
    if (name !== 'boundary') continue;
    if (found !== null && found !== value)
      return { value: '', error: 'The multipart Content-Type names two boundaries.' };
    if (quoted ? value.includes('\\') : !isToken(value)) {
      return { value: '', error: 'The multipart boundary is in a form KeyPin does not read.' };
    }
    found = value;
  }
  if (found === null || found === '') return { value: '', error: 'The multipart body has no boundary.' };
  return { value: found, error: null };
}

/** The `; name=value` parameters of a header value (names lower-cased), or null when a quoted string is unclosed. */
function mediaParams(v: string): [string, string, boolean][] | null {
  const out: [string, string, boolean][] = [];
  let i = v.indexOf(';');
  if (i === -1) return out;
  while (i < v.length) {
    i++; // past ';'
    const eq = v.indexOf('=', i);
    const semi = v.indexOf(';', i);
    if (eq === -1 || (semi !== -1 && semi < eq)) {
      if (semi === -1) break;
      i = semi;
      continue;
    }
    const name = v.slice(i, eq).trim().toLowerCase();
    let j = eq + 1;
    while (j < v.length && (v.charCodeAt(j) === 0x20 || v.charCodeAt(j) === 0x09)) j++;
    if (v.charCodeAt(j) === 0x22) {
      let k = j + 1;
      let value = '';
      for (; k < v.length; k++) {
        const ch = v.charCodeAt(k);
        if (ch === 0x22) break;
        if (ch === 0x5c && k + 1 < v.length) {
          value += v[k]! + v[k + 1]!;
          k++;
          continue;
        }
        value += v[k]!;
      }
      if (k >= v.length) return null;
      out.push([name, value, true]);
      const next = v.indexOf(';', k + 1);
      if (next === -1) break;
      i = next;
    } else {
      const next = v.indexOf(';', j);
      out.push([name, (next === -1 ? v.slice(j) : v.slice(j, next)).trim(), false]);
      if (next === -1) break;
      i = next;
    }
  }
  return out;
}

/** A quoted parameter value as Go (backslash escapes only tspecials) and as Python (\\ and \") read it. */
function quotedReadings(raw: string): string[] {
  if (!raw.includes('\\')) return [raw];
  const go = raw.replace(/\\([()<>@,;:\\"/[\]?=])/g, '$1');
  const py = raw.replaceAll('\\\\', '\\').replaceAll('\\"', '"');
  return go === py ? [go] : [go, py];
}

const TSPECIALS = '()<>@,;:\\"/[]?=';

function isToken(s: string): boolean {
  if (s === '') return false;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch <= 0x20 || ch >= 0x7f || TSPECIALS.includes(s[i]!)) return false;
  }
  return true;
}

/**
 * multipart/form-data, read as leniently as any relay: a delimiter is
 * `--boundary` at the start of the body or of a line (LF or CRLF, Go takes
 * either), followed by optional blanks and a line end (or `--`, the close).
 * A part's headers end at its first empty line. A part that names a field
 * read here must be plain: no header continuation lines, no RFC 2231 name,
 * no file name, no transfer encoding (Go decodes quoted-printable, Starlette
 * does not), a UTF-8 value.
 */
function readMultipart(body: Buffer, boundary: string, c: Collector): boolean {
  const delim = Buffer.from(`--${boundary}`, 'latin1');
  // Each delimiter: [start of the delimiter, start of the part after it (-1: the close)].
  const marks: [number, number][] = [];
  for (let at = body.indexOf(delim); at !== -1; at = body.indexOf(delim, at + 1)) {
    if (at !== 0 && body[at - 1] !== 0x0a) continue;
    let k = at + delim.length;
    if (body[k] === 0x2d && body[k + 1] === 0x2d) {
      marks.push([at, -1]);
      continue;
    }
    while (body[k] === 0x20 || body[k] === 0x09) k++;
    if (body[k] === 0x0d && body[k + 1] === 0x0a) marks.push([at, k + 2]);
    else if (body[k] === 0x0a) marks.push([at, k + 1]);
  }
  if (marks.length === 0) return c.refuse('The multipart body has no part boundary.');
  if (marks.length > MAX_MULTIPART_PARTS + 1)
    return c.refuse(`The multipart body has more than ${MAX_MULTIPART_PARTS} parts.`);
  const seen = new DuplicateCheck('');
  for (let m = 0; m < marks.length; m++) {
    const start = marks[m]![1];
    if (start === -1) continue;
    let end = m + 1 < marks.length ? marks[m + 1]![0] : body.length;
    if (m + 1 < marks.length) {
      end--; // the LF before the next delimiter
      if (end > start && body[end - 1] === 0x0d) end--;
    }
    if (!readPart(body, start, Math.max(start, end), seen, c)) return false;
  }
  return true;
}

/**
 * Starlette (LiteLLM) stops at 1000 fields or 1000 files and then reads the
 * body as empty, while Go reads on: more parts than this are refused.
 */
const MAX_MULTIPART_PARTS = 1000;

function readPart(body: Buffer, start: number, end: number, seen: DuplicateCheck, c: Collector): boolean {
  // Headers: lines to the first empty one; a line starting with a blank
  // continues the one before (Go's textproto joins them, python-multipart
  // does not: a part that needs the join to be read is refused below).
  const lines: string[] = [];
  let continued = false;
  let ended = false;
  let pos = start;
  while (pos < end) {
    let nl = body.indexOf(0x0a, pos);
    if (nl === -1 || nl >= end) nl = end;
    const lineEnd = nl > pos && body[nl - 1] === 0x0d ? nl - 1 : nl;
    if (lineEnd === pos) {
      pos = nl + 1;
      ended = true;
      break;
    }
    const line = body.toString('utf8', pos, lineEnd);
    pos = nl + 1;
    const first = line.charCodeAt(0);
    if ((first === 0x20 || first === 0x09) && lines.length > 0) {
      continued = true;
      lines[lines.length - 1] += ` ${line.trim()}`;
    } else lines.push(line);
  }
  const names: string[] = [];
  let fileName = false;
  let encoded = false;
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const header = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1);
    if (header === 'content-disposition') {
      const params = mediaParams(value);
      if (params === null) names.push('\0unreadable');
      else {
        for (const [p, v, quoted] of params) {
          if (p === 'name') names.push(...(quoted ? quotedReadings(v) : [v]));
          else if (p.startsWith('name*')) names.push('\0rfc2231');
          else if (p === 'filename' || p.startsWith('filename*')) fileName = true;
        }
      }
    } else if (header === 'content-transfer-encoding') {
      const enc = value.trim().toLowerCase();
      if (enc !== '7bit' && enc !== '8bit' && enc !== 'binary') encoded = true;
    }
  }
  if (names.includes('_charset_')) return c.refuse('The multipart body sets its own character set.');
  const relevant = names.some((n) => isFormFieldName(n, c.ctx));
  const odd = names.some((n) => n.startsWith('\0'));
  if (!relevant && !odd) return true;
  if (odd) return c.refuse('A multipart part is named in a form KeyPin does not read.');
  if (continued || fileName || encoded || !ended) {
    return c.refuse('A multipart part that names a model or token cap is in a form KeyPin does not read.');
  }
  const valueBytes = body.subarray(pos, end);
  const value = (): string | null => (isUtf8(valueBytes) ? valueBytes.toString('utf8') : null);
  for (const n of names) if (!formField(n, value, seen, c)) return false;
  return true;
}

/** Whether a form field name is one read here. */
function isFormFieldName(rawName: string, ctx: BodyContext | null): boolean {
  const name = rawName.endsWith('[]') ? rawName.slice(0, -2) : rawName;
  const folded = foldName(name);
  if (folded === null) return false;
  const kind = TOP_FIELDS.get(folded);
  if (kind !== undefined) return kind !== 'config' && kind !== 'requests' && kind !== 'extra';
  const special = contextField(ctx, folded);
  return special !== null && special !== 'completion';
}

// --- bytes and strings -------------------------------------------------------------

/**
 * `s` (one char per byte, as Node gives a request line, or ordinary text) as
 * bytes with `%XX` decoded (and '+' as a space when `plus`); invalid escapes
 * stay as they are (Python keeps them; Go refuses the whole request).
 */
function percentDecode(s: string, plus: boolean): Buffer {
  let wide = false;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0xff) {
      wide = true;
      break;
    }
  }
  const src = Buffer.from(s, wide ? 'utf8' : 'latin1');
  const out = Buffer.allocUnsafe(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x25 && i + 2 < src.length) {
      const h = hexValue(src[i + 1]!);
      const l = hexValue(src[i + 2]!);
      if (h >= 0 && l >= 0) {
        out[n++] = h * 16 + l;
        i += 2;
        continue;
      }
    }
    out[n++] = plus && b === 0x2b ? 0x20 : b;
  }
  return out.subarray(0, n);
}

/** percentDecode, then UTF-8 (invalid sequences as U+FFFD, as Python's unquote). Plain ASCII comes back as is. */
function decodeBytes(s: string, plus: boolean): string {
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch === 0x25 || ch >= 0x80 || (plus && ch === 0x2b)) {
      plain = false;
      break;
    }
  }
  return plain ? s : percentDecode(s, plus).toString('utf8');
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

/** Python's str.strip(): removes the characters str.isspace() accepts. */
function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isPySpace(s.charCodeAt(a))) a++;
  while (b > a && isPySpace(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function isPySpace(ch: number): boolean {
  return (
    (ch >= 0x09 && ch <= 0x0d) ||
    (ch >= 0x1c && ch <= 0x20) ||
    ch === 0x85 ||
    ch === 0xa0 ||
    ch === 0x1680 ||
    (ch >= 0x2000 && ch <= 0x200a) ||
    ch === 0x2028 ||
    ch === 0x2029 ||
    ch === 0x202f ||
    ch === 0x205f ||
    ch === 0x3000
  );
}
