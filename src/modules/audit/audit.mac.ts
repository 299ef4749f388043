import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { parseAuditHmacKeys } from '../../config.js';

/**
 * The keyed half of the audit chain. The contract's `hash` is an unkeyed SHA-256 chain that clients recompute, so
 * anyone who can write the table can also compute a "valid" forged hash. Each event therefore also carries
 *
 *   mac = key_id ":" lowercase hex( HMAC-SHA256( key, "cdsa.audit.mac.v1:" ‖ hash ) )
 *
 * under a key that lives outside the database (AUDIT_HMAC_KEYS, or DATA_DIR/dev-secrets.json in development).
 * `hash` already commits to `prev_hash`, `seq` and every field, so the MAC of one event authenticates its content
 * and its whole past; chaining the MACs as well would add nothing.
 */
const DOMAIN = 'cdsa.audit.mac.v1:';
const MAC_PATTERN = /^([A-Za-z0-9_-]{1,32}):([0-9a-f]{64})$/;

export type MacCheck = 'valid' | 'missing' | 'unknown_key' | 'invalid';

export interface AuditMacKeyring {
  /** The key new events are keyed with. */
  readonly activeKeyId: string;
  mac(hash: string): string;
  check(hash: string, mac: string | null | undefined): MacCheck;
}

export function createAuditMacKeyring(keys: string): AuditMacKeyring {
  const parsed = parseAuditHmacKeys(keys, 'AUDIT_HMAC_KEYS');
  const byId = new Map<string, KeyObject>(parsed.map((entry) => [entry.id, createSecretKey(entry.key)]));
  const active = parsed[0]!;
  const activeKey = byId.get(active.id)!;
  const digest = (key: KeyObject, hash: string) => createHmac('sha256', key).update(DOMAIN + hash, 'utf8').digest();

  return {
    activeKeyId: active.id,
    mac(hash) {
      return `${active.id}:${digest(activeKey, hash).toString('hex')}`;
    },
    check(hash, mac) {
      if (mac === null || mac === undefined || mac === '') return 'missing';
      const match = MAC_PATTERN.exec(mac);
      if (!match) return 'invalid';
      const key = byId.get(match[1]!);
      if (!key) return 'unknown_key';
      return timingSafeEqual(digest(key, hash), Buffer.from(match[2]!, 'hex')) ? 'valid' : 'invalid';
    },
  };
}
