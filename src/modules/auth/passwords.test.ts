import { describe, expect, it } from 'vitest';
import { checkPasswordPolicy, hashPassword, loadCommonPasswords, needsRehash, verifyPassword } from './passwords.js';

describe('password rules', () => {
  const context = { username: 'grace', email: 'grace.hopper@example.test' };

  it('accepts a long, uncommon password', () => {
    expect(checkPasswordPolicy('Cobol-compiler-1959', context)).toEqual([]);
  });

  it('counts length in characters, not bytes or UTF-16 units', () => {
    expect(checkPasswordPolicy('🔒🔑🗝️🛡️🔐🧷', context)).toHaveLength(1);
    expect(checkPasswordPolicy('ünïcødé-pässwörd', context)).toEqual([]);
  });

  it.each([
    ['too short', 'Short-pw-1', /at least 12/],
    ['too long', `${'Abc-123-'.repeat(16)}x`, /at most 128/],
    ['the username', 'GRACE', /at least 12/],
    ['the e-mail', 'Grace.Hopper@Example.test', /same as the username or e-mail/],
    ['the e-mail local part', 'grace.hopper', /same as/],
    ['common', 'Password1234', /too common/],
    ['common with a year', 'Welcome2024!', /too common/],
    ['a keyboard walk', '1q2w3e4r5t6y', /too common/],
    ['a repetition', 'aaaaaaaaaaaaaaaa', /too common|different characters/],
    ['few distinct characters', 'xyzxyzxyzxyzxyz', /different characters/],
  ])('rejects %s', (_label, password, message) => {
    const errors = checkPasswordPolicy(password, { ...context, username: _label === 'the username' ? 'GRACE' : context.username }, '/new_password');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.pointer).toBe('/new_password');
    expect(errors[0]!.detail).toMatch(message);
  });

  it('rejects a password equal to a username of 12+ characters', () => {
    expect(checkPasswordPolicy('Grace_Hopper_1906', { username: 'grace_hopper_1906' })[0]!.detail).toMatch(/same as the username/);
  });

  it('ships a list of at least 10,000 common passwords, lower case', () => {
    const list = loadCommonPasswords();
    expect(list.size).toBeGreaterThanOrEqual(10_000);
    expect(list.has('password')).toBe(true);
    expect([...list].every((entry) => entry === entry.toLowerCase())).toBe(true);
  });
});

describe('argon2id hashing', () => {
  it('hashes with the OWASP parameters and verifies', async () => {
    const hash = await hashPassword('Cobol-compiler-1959');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(needsRehash(hash)).toBe(false);
    await expect(verifyPassword(hash, 'Cobol-compiler-1959')).resolves.toBe(true);
    await expect(verifyPassword(hash, 'cobol-compiler-1959')).resolves.toBe(false);
  });

  it('never throws on a corrupt hash, and flags weaker parameters for rehash', async () => {
    await expect(verifyPassword('not-a-hash', 'whatever')).resolves.toBe(false);
    expect(needsRehash('$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA')).toBe(true);
  });
});
