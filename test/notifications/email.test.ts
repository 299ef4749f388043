import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { createTool, execute, gatedWebhook, startSink, type Sink } from '../tools/helpers.js';

interface Received {
  from: string;
  to: string[];
  subject: string;
  text: string;
  headers: Map<string, unknown>;
}

const SMTP_USER = 'cdsa-mailer';
const SMTP_PASSWORD = 'smtp-Pa55word-never-logged';
const PUBLIC_URL = 'https://cdsa.example.test';

/**
 * A real SMTP server in this process (smtp-server, with authentication): it records what it accepts and refuses the
 * first attempts to chosen recipients with a temporary error, so retries go through the job queue as in production.
 */
async function startSmtp() {
  const received: Received[] = [];
  const refusals = new Map<string, number>();
  const attempts = new Map<string, number>();
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === SMTP_USER && auth.password === SMTP_PASSWORD) return callback(null, { user: auth.username });
      return callback(new Error('Invalid username or password'));
    },
    onRcptTo(address, _session, callback) {
      const to = address.address.toLowerCase();
      attempts.set(to, (attempts.get(to) ?? 0) + 1);
      const left = refusals.get(to) ?? 0;
      if (left > 0) {
        refusals.set(to, left - 1);
        const error = new Error('Mailbox busy, try again later') as Error & { responseCode: number };
        error.responseCode = 451;
        return callback(error);
      }
      return callback();
    },
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((mail) => {
          received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((rcpt) => rcpt.address.toLowerCase()),
            subject: mail.subject ?? '',
            text: mail.text ?? '',
            headers: mail.headers,
          });
          callback();
        })
        .catch((error: Error) => callback(error));
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    attempts,
    refuse(address: string, times: number) {
      refusals.set(address.toLowerCase(), times);
    },
    to(address: string) {
      return received.filter((mail) => mail.to.includes(address.toLowerCase()));
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function captureLog() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('notifications by e-mail (SMTP)', { timeout: 120_000 }, () => {
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let sink: Sink;
  let t: TestApp;
  let admin: TestUser;
  let analyst: TestUser;
  const log = captureLog();

  beforeAll(async () => {
    smtp = await startSmtp();
    sink = await startSink();
    t = await buildTestApp({
      logStream: log.stream,
      env: {
        LOG_LEVEL: 'debug',
        SMTP_URL: `smtp://${SMTP_USER}:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${smtp.port}`,
        SMTP_FROM: 'CDSA <cdsa@example.test>',
        PUBLIC_URL,
        TOOL_HTTP_ALLOWLIST: sink.hostPort,
      },
    });
    admin = await createUser(t, { role: 'ADMIN' });
    analyst = await createUser(t, { role: 'ANALYST' });
    await createTool(t, admin, gatedWebhook(sink, 'wire_transfer'));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
    await sink?.close();
  });

  const preferences = (user: TestUser, body: Record<string, unknown>) =>
    t.app.inject({ method: 'PUT', url: '/api/v1/notifications/preferences', headers: user.headers, payload: body });

  it('e-mails an approver who asked for it: a link to the approval, never the arguments; retried past a temporary refusal', async () => {
    const approver = await createUser(t, { role: 'MANAGER' });
    const bystander = await createUser(t, { role: 'MANAGER' });
    const set = await preferences(approver, { preferences: [{ notification_type: 'APPROVAL_REQUESTED', enabled: true, delivery_method: 'email' }] });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json().preferences).toContainEqual({ notification_type: 'APPROVAL_REQUESTED', enabled: true, delivery_method: 'email' });
    smtp.refuse(approver.user.email, 2);

    const requested = await execute(t, analyst, 'wire_transfer', { amount: 987654, to: 'acct-DO-NOT-LEAK-42' });
    expect(requested.statusCode, requested.body).toBe(202);
    const { approval_id: approvalId } = requested.json() as { approval_id: string };

    const [mail] = await vi.waitFor(
      () => {
        const mails = smtp.to(approver.user.email);
        if (mails.length === 0) throw new Error('no e-mail yet');
        return mails;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(smtp.attempts.get(approver.user.email)).toBe(3);
    expect(mail!.from).toBe('cdsa@example.test');
    expect(mail!.subject).toContain('[CDSA]');
    expect(mail!.text).toContain(`${PUBLIC_URL}/api/v1/approvals/${approvalId}`);
    expect(mail!.text).toContain(analyst.user.username);
    expect(mail!.text).not.toContain('acct-DO-NOT-LEAK-42');
    expect(mail!.text).not.toContain('987654');
    expect(mail!.headers.get('auto-submitted')).toBe('auto-generated');
    // It is in the inbox as well.
    const inbox = await t.app.inject({ method: 'GET', url: '/api/v1/notifications', headers: approver.headers });
    expect(inbox.json().items).toContainEqual(expect.objectContaining({ type: 'APPROVAL_REQUESTED', data: expect.objectContaining({ approval_id: approvalId }) }));

    // The in-app-only approver got no e-mail, and nobody got one twice.
    expect(smtp.to(bystander.user.email)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(smtp.to(approver.user.email)).toHaveLength(1);

    // The SMTP password and URL never reached the log, though failed attempts were logged.
    expect(log.text()).toContain('notification e-mail not accepted');
    expect(log.text()).not.toContain(SMTP_PASSWORD);
    expect(log.text()).not.toContain(encodeURIComponent(SMTP_PASSWORD));
  });

  it('sends one e-mail per recipient of a broadcast who asked for it, and stops when the preference goes back in-app', async () => {
    const subscriber = await createUser(t, { role: 'ANALYST' });
    expect((await preferences(subscriber, { preferences: [{ notification_type: 'SYSTEM_MAINTENANCE', enabled: true, delivery_method: 'email' }] })).statusCode).toBe(200);
    const broadcast = (title: string) =>
      t.app.inject({
        method: 'POST',
        url: '/api/v1/notifications/broadcast',
        headers: admin.headers,
        payload: { type: 'SYSTEM_MAINTENANCE', title, message: 'The service restarts at 22:00 UTC.' },
      });
    expect((await broadcast('Maintenance tonight')).statusCode).toBe(202);
    const mails = await vi.waitFor(
      () => {
        const found = smtp.received.filter((mail) => mail.subject === '[CDSA] Maintenance tonight');
        if (found.length === 0) throw new Error('no e-mail yet');
        return found;
      },
      { timeout: 30_000, interval: 100 },
    );
    expect(mails.flatMap((mail) => mail.to)).toEqual([subscriber.user.email.toLowerCase()]);
    expect(mails[0]!.text).toContain(`${PUBLIC_URL}/`);

    // `realtime` is the in-app method's other name; answers say in_app.
    const back = await preferences(subscriber, { preferences: [{ notification_type: 'SYSTEM_MAINTENANCE', enabled: true, delivery_method: 'realtime' }] });
    expect(back.statusCode, back.body).toBe(200);
    expect(back.json().preferences).toContainEqual({ notification_type: 'SYSTEM_MAINTENANCE', enabled: true, delivery_method: 'in_app' });
    expect((await broadcast('Second notice')).statusCode).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(smtp.received.filter((mail) => mail.subject === '[CDSA] Second notice')).toEqual([]);
  });

  it('lets SECURITY_ALERT go by e-mail too, but never be switched off', async () => {
    const user = await createUser(t);
    const byEmail = await preferences(user, { preferences: [{ notification_type: 'SECURITY_ALERT', enabled: true, delivery_method: 'email' }] });
    expect(byEmail.statusCode, byEmail.body).toBe(200);
    expect(byEmail.json().preferences).toContainEqual({ notification_type: 'SECURITY_ALERT', enabled: true, delivery_method: 'email' });
    expect((await preferences(user, { preferences: [{ notification_type: 'SECURITY_ALERT', enabled: true, delivery_method: 'none' }] })).statusCode).toBe(422);
  });
});
