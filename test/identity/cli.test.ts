import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerCommands } from '../../src/cli/commands/index.js';
import { runUsersCreate } from '../../src/cli/commands/users.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { login, strongPassword, uniqueUsername } from '../helpers/users.js';

function recorder() {
  const lines: string[] = [];
  const errors: string[] = [];
  return { out: { log: (line: string) => lines.push(line), error: (line: string) => errors.push(line) }, lines, errors };
}

describe('cdsa users create', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ env: { REGISTRATION_MODE: 'closed' } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('creates a user of any role with a given password, even when registration is closed', async () => {
    const username = uniqueUsername('cli');
    const password = strongPassword();
    const { out, lines } = recorder();
    expect(await runUsersCreate(t.app, { username, email: `${username}@example.test`, role: 'MANAGER' }, password, out)).toBe(0);
    expect(lines.join('\n')).not.toContain(password);
    await expect(login(t, username, password)).resolves.toMatchObject({ user: { role: 'MANAGER' } });
  });

  it('generates and prints a password when none is given', async () => {
    const username = uniqueUsername('cli');
    const { out, lines } = recorder();
    expect(await runUsersCreate(t.app, { username, email: `${username}@example.test`, role: 'ADMIN' }, undefined, out)).toBe(0);
    const printed = lines.find((line) => line.startsWith('password: '))!.slice('password: '.length);
    await expect(login(t, username, printed)).resolves.toMatchObject({ user: { role: 'ADMIN' } });
  });

  it('explains rule violations and duplicates with exit code 1', async () => {
    const username = uniqueUsername('cli');
    const weak = recorder();
    expect(await runUsersCreate(t.app, { username, email: `${username}@example.test`, role: 'ANALYST' }, 'password1234', weak.out)).toBe(1);
    expect(weak.errors.join('\n')).toMatch(/password is too common/);
    expect(await runUsersCreate(t.app, { username, email: `${username}@example.test`, role: 'ANALYST' }, strongPassword(), recorder().out)).toBe(0);
    const duplicate = recorder();
    expect(await runUsersCreate(t.app, { username, email: `${username}@example.test`, role: 'ANALYST' }, strongPassword(), duplicate.out)).toBe(1);
    expect(duplicate.errors.join('\n')).toMatch(/already exists/);
  });
});

describe('cdsa users create, on the command line', () => {
  it('is registered with its options', () => {
    const program = new Command();
    registerCommands(program);
    const create = program.commands.find((command) => command.name() === 'users')?.commands.find((command) => command.name() === 'create');
    expect(create).toBeDefined();
    expect(create!.options.map((option) => option.long).sort()).toEqual(['--email', '--full-name', '--password-stdin', '--role', '--username']);
  });
});
