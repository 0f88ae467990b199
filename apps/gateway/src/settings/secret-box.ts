import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

export interface SealedSecret {
  v: 1;
  iv: string;
  tag: string;
  data: string;
}

/**
 * Encrypts secrets KeyPin must keep in the database (the webhook secret):
 * AES-256-GCM with a key derived from HMAC_SECRET, so a database dump alone
 * does not reveal them.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(master: Buffer) {
    this.key = Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'keypin settings secret v1', 32));
  }

  seal(plain: string): SealedSecret {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return {
      v: 1,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
  }

  /** Null when the value is not a sealed secret or was sealed with another key. */
  open(sealed: unknown): string | null {
    const s = sealed as Partial<SealedSecret> | null;
    if (
      !s ||
      s.v !== 1 ||
      typeof s.iv !== 'string' ||
      typeof s.tag !== 'string' ||
      typeof s.data !== 'string'
    ) {
      return null;
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(s.iv, 'base64'));
      decipher.setAuthTag(Buffer.from(s.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(s.data, 'base64')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      return null;
    }
  }
}
