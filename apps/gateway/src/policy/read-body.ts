import type { IncomingMessage } from 'node:http';

export type BodyRead =
  | { kind: 'ok'; body: Buffer }
  /** Longer than the limit: declared so, or found so while reading (the rest is left unread). */
  | { kind: 'too_large' }
  /** No byte arrived for the timeout. */
  | { kind: 'timeout' }
  /** The client went away before the end. */
  | { kind: 'aborted' };

/**
 * Reads a whole request body of at most `limit` bytes into one buffer (for
 * a policy that must look inside it; every other request streams). A
 * declared `Content-Length` over the limit is refused before reading.
 * `idleMs` (0 = never) bounds the wait for each next chunk.
 */
export function readBody(req: IncomingMessage, limit: number, idleMs: number): Promise<BodyRead> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.resolve({ kind: 'too_large' });
  return new Promise<BodyRead>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | null = null;
    const finish = (r: BodyRead): void => {
      if (timer !== null) clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
      resolve(r);
    };
    const arm = (): void => {
      if (idleMs <= 0) return;
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(() => finish({ kind: 'timeout' }), idleMs);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        finish({ kind: 'too_large' });
        return;
      }
      chunks.push(chunk);
      arm();
    };
    const onEnd = (): void =>
      finish({ kind: 'ok', body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    const onGone = (): void => finish({ kind: 'aborted' });
    const onClose = (): void => {
      if (!req.complete) finish({ kind: 'aborted' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onClose);
    arm();
  });
}
