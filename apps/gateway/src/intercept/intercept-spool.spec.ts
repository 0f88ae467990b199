import { mkdtempSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { InterceptSpool, spoolFolderFor } from './intercept-spool';
import { type InterceptEvent, toWire } from './intercept.types';

const logger = pino({ level: 'silent' });
const DB_A = 'postgres://postgres:secret@127.0.0.1:5432/keypin';
const DB_B = 'postgres://postgres@127.0.0.1:5432/keypin_staging';

const event = (n: number): InterceptEvent => ({
  id: `01a20b27-0000-7000-8000-${n.toString().padStart(12, '0')}`,
  bindingId: 1,
  tokenDisplay: 'ab\u2026cd',
  attemptIp: '127.0.0.3',
  allowedIps: ['127.0.0.2/32'],
  reason: 'ip_not_allowed',
  method: 'GET',
  path: '/v1/models',
  userAgent: null,
  enforced: true,
  at: new Date(1_764_000_000_000 + n),
});

describe('InterceptSpool', () => {
  const dirs: string[] = [];
  const spoolDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'keypin-spool-spec-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('names a folder per database, without credentials', () => {
    expect(spoolFolderFor(DB_A)).toMatch(/^keypin-[0-9a-f]{12}$/);
    expect(spoolFolderFor(DB_A)).not.toContain('secret');
    expect(spoolFolderFor(DB_A)).toBe(spoolFolderFor('postgres://other:pw@127.0.0.1/keypin'));
    expect(spoolFolderFor(DB_A)).not.toBe(spoolFolderFor(DB_B));
    expect(spoolFolderFor(DB_A)).not.toBe(spoolFolderFor('postgres://postgres@10.0.0.5:5432/keypin'));
  });

  it('replays a batch only into the database it was spooled for', async () => {
    const dir = spoolDir();
    const a = new InterceptSpool(dir, DB_A, logger);
    const b = new InterceptSpool(dir, DB_B, logger);
    await a.write([event(1), event(2)]);
    const intoB: InterceptEvent[] = [];
    expect(await b.replay((e) => Promise.resolve(intoB.push(...e)))).toBe(0);
    expect(intoB).toEqual([]);
    const intoA: InterceptEvent[] = [];
    expect(await a.replay((e) => Promise.resolve(intoA.push(...e)))).toBe(2);
    expect(intoA.map((e) => e.id)).toEqual([event(1).id, event(2).id]);
    expect(await a.pendingFiles()).toEqual([]);
  });

  it('keeps a batch whose write fails, and replays files of the older flat layout', async () => {
    const dir = spoolDir();
    const legacy = join(dir, 'intercepts');
    mkdirSync(legacy, { recursive: true });
    writeFileSync(join(legacy, '000000000000001-old.json'), JSON.stringify([toWire(event(0))]));
    const a = new InterceptSpool(dir, DB_A, logger);
    await a.write([event(3)]);
    await expect(a.replay(() => Promise.reject(new Error('PostgreSQL still down')))).rejects.toThrow(
      'still down',
    );
    expect(await a.pendingFiles()).toHaveLength(2);
    const seen: string[] = [];
    expect(await a.replay((e) => Promise.resolve(seen.push(...e.map((x) => x.id))))).toBe(2);
    expect(seen).toEqual([event(0).id, event(3).id]);
    expect(readdirSync(legacy).filter((f) => f.endsWith('.json'))).toEqual([]);
  });

  it('two processes replaying one spool write every batch exactly once (a rename claims a file)', async () => {
    const dir = spoolDir();
    const writer = new InterceptSpool(dir, DB_A, logger);
    for (let i = 0; i < 40; i++) await writer.write([event(100 + i)]);
    const a = new InterceptSpool(dir, DB_A, logger);
    const b = new InterceptSpool(dir, DB_A, logger);
    const written: string[] = [];
    // A slow write, so that both replays overlap.
    const write = async (e: InterceptEvent[]) => {
      await new Promise((r) => setTimeout(r, 2));
      written.push(...e.map((x) => x.id));
    };
    const [na, nb] = await Promise.all([a.replay(write), b.replay(write)]);
    expect(na + nb).toBe(40);
    expect(na).toBeGreaterThan(0);
    expect(nb).toBeGreaterThan(0);
    expect(new Set(written).size).toBe(40);
    expect(written).toHaveLength(40);
    expect(await a.pendingFiles()).toEqual([]);
  });

  it('replays a batch claimed by a process that died before writing it', async () => {
    const dir = spoolDir();
    const a = new InterceptSpool(dir, DB_A, logger, 0);
    await a.write([event(7)]);
    const [file] = await a.pendingFiles();
    // What a replaying process leaves behind when it is killed mid-replay.
    renameSync(file!, `${file!}.999999.claimed`);
    // The claim's ctime has sub-millisecond precision; let Date.now() pass it.
    await new Promise((r) => setTimeout(r, 10));
    const fresh = new InterceptSpool(dir, DB_A, logger, 60_000);
    expect(await fresh.pendingFiles()).toEqual([]);
    const seen: string[] = [];
    expect(await a.replay((e) => Promise.resolve(seen.push(...e.map((x) => x.id))))).toBe(1);
    expect(seen).toEqual([event(7).id]);
    expect(await a.pendingFiles()).toEqual([]);
  });
});
