import { connect } from 'node:net';

export interface RawReply {
  status: number;
  /** The whole answer as received (head and body). */
  text: string;
  body: string;
}

/**
 * Sends `request` byte for byte (latin1) over one socket bound to `from` and
 * reads until the server closes it: for targets and headers that Node's own
 * client would normalise or refuse. Send `Connection: close`.
 */
export function rawRequest(
  port: number,
  request: string,
  from = '127.0.0.2',
  timeoutMs = 10_000,
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(request.split('\r\n')[0])}`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(request, 'latin1'));
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const sep = text.indexOf('\r\n\r\n');
      resolve({ status, text, body: sep === -1 ? '' : text.slice(sep + 4) });
    });
  });
}
