/**
 * The relays KeyPin can stand in front of (docs/contract.md 2.1). Each one reads an
 * API key from its own places and turns the value into the key it looks up
 * in its own way; `docs/relays.md` holds the table, with the relay source
 * each line was read from. The parsing itself is in `key.ts`.
 */
export type Relay = 'newapi' | 'litellm' | 'openai';
export const RELAYS: readonly Relay[] = ['newapi', 'litellm', 'openai'];

/** Whether the relay's key store compares keys with case (`sensitive`) or without. */
export type KeyCase = 'sensitive' | 'insensitive';
export const KEY_CASES: readonly KeyCase[] = ['sensitive', 'insensitive'];
