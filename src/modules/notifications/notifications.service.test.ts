import { describe, expect, it } from 'vitest';
import type { Db, Tx } from '../../db/client.js';
import type { UnitOfWork } from '../../db/unit-of-work.js';
import { ForbiddenError, ValidationError } from '../../lib/errors.js';
import type { Actor } from '../auth/permissions.js';
import type { NotificationHub } from './notifications.hub.js';
import type { NotificationRepository, NotificationTemplate, Recipients } from './notifications.repository.js';
import { createNotificationService, parseLastEventId } from './notifications.service.js';
import type { NotifyInput } from './notifications.types.js';

const USER = '7d1f3a52-0f0e-4a8e-9d35-3c8c1c2f0a11';

/** A strict fake: any repository call the test did not expect fails. */
function strictRepository(overrides: Partial<NotificationRepository>): NotificationRepository {
  return new Proxy(overrides as NotificationRepository, {
    get(target, property: string) {
      const value = target[property as keyof NotificationRepository];
      if (value === undefined) throw new Error(`unexpected repository call: ${property}`);
      return value;
    },
  });
}

function unitOfWork(): UnitOfWork & { tasks: (() => unknown)[] } {
  const tasks: (() => unknown)[] = [];
  return { tx: {} as Tx, afterCommit: (task) => tasks.push(task), tasks };
}

function setup(repository: Partial<NotificationRepository>) {
  const announced: { seq: number; rows: unknown[]; template: NotificationTemplate }[] = [];
  const hub: Pick<NotificationHub, 'announce' | 'attach' | 'streamCount'> = {
    streamCount: () => 0,
    announce: async (seq, rows, template) => {
      announced.push({ seq, rows, template });
    },
    attach: () => {
      throw new Error('unexpected attach');
    },
  };
  const service = createNotificationService({
    db: {} as Db,
    repository: strictRepository(repository),
    hub,
    audit: {
      record: async () => {
        throw new Error('unexpected audit');
      },
    },
    logger: { warn: () => undefined },
    now: () => new Date('2026-11-26T09:00:00.000Z'),
  });
  return { service, announced };
}

const input: NotifyInput = { userId: USER, type: 'APPROVAL_REQUESTED', title: '  Approval needed ', message: 'Tool x' };

describe('parseLastEventId', () => {
  it('accepts non-negative integers and ignores anything else', () => {
    expect(parseLastEventId('0')).toBe(0);
    expect(parseLastEventId(' 42 ')).toBe(42);
    for (const bad of [undefined, '', '-1', '1.5', 'abc', '1e3', '9'.repeat(16), '0x10']) expect(parseLastEventId(bad)).toBeUndefined();
  });
});

describe('notification service', () => {
  it('persists in the caller’s transaction and announces only after it commits', async () => {
    const calls: { recipients: Recipients; template: NotificationTemplate }[] = [];
    const { service, announced } = setup({
      insertForRecipients: async (_db, recipients, template) => {
        calls.push({ recipients, template });
        return { seq: 7, rows: [{ id: 'n1', userId: USER }] };
      },
    });
    const uow = unitOfWork();
    const created = await service.notify(input, uow);
    expect(created).toMatchObject({ id: 'n1', seq: 7, userId: USER, title: 'Approval needed', priority: 'normal', isRead: false });
    expect(calls[0]!.recipients).toEqual({ userIds: [USER] });
    expect(announced).toHaveLength(0);
    for (const task of uow.tasks) await task();
    expect(announced).toHaveLength(1);
    expect(announced[0]).toMatchObject({ seq: 7, rows: [{ id: 'n1', userId: USER }] });
  });

  it('returns null and announces nothing when preferences switched the type off', async () => {
    const { service } = setup({ insertForRecipients: async () => ({ seq: null, rows: [] }) });
    const uow = unitOfWork();
    expect(await service.notify(input, uow)).toBeNull();
    expect(uow.tasks).toHaveLength(0);
  });

  it('rejects bad content before touching the database', async () => {
    const { service } = setup({});
    const uow = unitOfWork();
    await expect(service.notify({ ...input, title: ' ' }, uow)).rejects.toBeInstanceOf(ValidationError);
    await expect(service.notify({ ...input, type: 'NOPE' as NotifyInput['type'] }, uow)).rejects.toBeInstanceOf(ValidationError);
    await expect(service.notify({ ...input, message: 'x'.repeat(4_001) }, uow)).rejects.toBeInstanceOf(ValidationError);
    await expect(service.notify({ ...input, expiresAt: new Date('nope') }, uow)).rejects.toBeInstanceOf(ValidationError);
  });

  it('notifyRole reaches that role and every role above it', async () => {
    const seen: Recipients[] = [];
    const { service } = setup({
      insertForRecipients: async (_db, recipients) => {
        seen.push(recipients);
        return { seq: null, rows: [] };
      },
    });
    await service.notifyRole('MANAGER', input, unitOfWork());
    await service.notifyRole('ANALYST', input, unitOfWork());
    expect(seen).toEqual([{ roles: ['MANAGER', 'ADMIN'] }, { roles: ['ANALYST', 'MANAGER', 'ADMIN'] }]);
  });

  it('notifyUsers ignores duplicates and an empty list costs nothing', async () => {
    const seen: Recipients[] = [];
    const { service } = setup({
      insertForRecipients: async (_db, recipients) => {
        seen.push(recipients);
        return { seq: null, rows: [] };
      },
    });
    expect(await service.notifyUsers([], input)).toEqual({ recipients: 0 });
    await service.notifyUsers([USER, USER], input, unitOfWork());
    expect(seen).toEqual([{ userIds: [USER] }]);
  });

  it('broadcast needs notifications:broadcast', async () => {
    const { service } = setup({});
    const manager: Actor = { userId: USER, username: 'm', role: 'MANAGER', sessionId: USER };
    await expect(service.broadcast(manager, { type: 'SYSTEM_MAINTENANCE', title: 't', message: 'm' })).rejects.toBeInstanceOf(ForbiddenError);
  });

  it('refuses to switch SECURITY_ALERT off', async () => {
    const { service } = setup({});
    const actor: Actor = { userId: USER, username: 'a', role: 'ANALYST', sessionId: USER };
    await expect(
      service.updatePreferences(actor, [{ notification_type: 'SECURITY_ALERT', enabled: false, delivery_method: 'in_app' }]),
    ).rejects.toMatchObject({ status: 422, errors: [{ pointer: '/preferences/0' }] });
  });
});
