/**
 * The hop-by-hop header fields: the one list every part of the proxy uses
 * (request heads sent downstream, `request-head.ts`; responses relayed to
 * the client, `forwarder.ts`; a relay's refusal of a WebSocket upgrade,
 * `upgrade-answer.ts`).
 *
 * Why these (RFC 9110 §7.6.1): a field that describes one connection means
 * nothing on the next one, so a proxy removes `Connection` itself, every
 * field `Connection` names (each user of this list parses its tokens), and
 * the fields known to be connection-specific whether or not `Connection`
 * names them: `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`
 * and `Upgrade`. `Trailer` is added as RFC 2616 §13.5.1 listed it. docs/contract.md 2.4
 * asks for exactly this set ("Connection and every header it names,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade
 * outside a WebSocket").
 *
 * - `Transfer-Encoding`: each hop frames the body itself (Node and undici
 *   re-frame what they relay), so the other side's framing must not be
 *   repeated. The one place a body is relayed byte for byte, a refused
 *   upgrade (`upgrade-answer.ts`), keeps it: there it is the framing.
 * - `Upgrade`: a WebSocket tunnel writes its own `Connection: Upgrade` and
 *   `Upgrade: websocket` (`websocket-tunnel.ts`); nothing else upgrades.
 *
 * Names are lower case; a lookup is one `Set.has` on the already
 * lower-cased name (no allocation per request).
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
