import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';

/** HMAC-SHA256 of the canonical key, with the key object built once. */
export class KeyHasher {
  private readonly key: KeyObject;

  constructor(secret: Buffer) {
    this.key = createSecretKey(secret);
  }

  /** 32-byte digest as lower-case hex (64 characters). */
  hashHex(canonicalKey: string): string {
    return createHmac('sha256', this.key).update(canonicalKey, 'utf8').digest('hex');
  }
}
