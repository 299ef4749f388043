import nodemailer from 'nodemailer';
import type { Db } from '../../db/client.js';
import type { JobQueue } from '../../lib/infra/jobs.js';
import type { NotificationRepository } from './notifications.repository.js';
import type { Notification } from './notifications.types.js';

export const EMAIL_JOB = 'notifications.email';
/** Attempts of one e-mail, with exponential backoff from EMAIL_BACKOFF_MS (1, 2, 4, 8, 16 s … for the default). */
export const EMAIL_ATTEMPTS = 6;
export const EMAIL_BACKOFF_MS = 1_000;

export interface EmailJobData {
  notification_id: string;
}

/** The part of a nodemailer transport this module uses. */
export interface MailTransport {
  sendMail(message: { from: string; to: string; subject: string; text: string; headers: Record<string, string> }): Promise<unknown>;
  close(): void;
}

export interface SmtpSettings {
  /** smtp://[user:password@]host[:port] (STARTTLS when the server offers it) or smtps:// (TLS from the start). */
  url: string;
  from: string;
  timeoutMs: number;
}

/**
 * A transport built from SMTP_URL. The URL is taken apart here rather than handed to nodemailer as a string so that the
 * timeouts apply, and nodemailer's own logger stays off: nothing of the URL (it may hold a password) reaches a log.
 */
export function createSmtpTransport(settings: SmtpSettings): MailTransport {
  const parsed = new URL(settings.url);
  const secure = parsed.protocol === 'smtps:';
  const transport = nodemailer.createTransport({
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port ? Number(parsed.port) : secure ? 465 : 587,
    secure,
    auth: parsed.username ? { user: decodeURIComponent(parsed.username), pass: decodeURIComponent(parsed.password) } : undefined,
    connectionTimeout: settings.timeoutMs,
    greetingTimeout: settings.timeoutMs,
    socketTimeout: settings.timeoutMs,
    logger: false,
    debug: false,
  });
  return {
    sendMail: (message) => transport.sendMail(message),
    close: () => transport.close(),
  };
}

/** What may be said about a failed send: the SMTP reply code and nodemailer's error code, never its text or the URL. */
export function describeSmtpError(error: unknown): string {
  const { code, responseCode, command } = (error ?? {}) as { code?: unknown; responseCode?: unknown; command?: unknown };
  const parts = [
    typeof code === 'string' && /^[A-Z_]{2,40}$/.test(code) ? code : null,
    typeof responseCode === 'number' ? `reply ${responseCode}` : null,
    typeof command === 'string' && /^[A-Z ]{2,20}$/.test(command) ? `to ${command}` : null,
  ].filter((part) => part !== null);
  return parts.length > 0 ? parts.join(', ') : 'unknown error';
}

/**
 * The link an e-mail carries: the notification's own link (a path on this service) under PUBLIC_URL, or the service
 * itself. Nothing else of the notification's data goes into an e-mail: approval e-mails never carry a tool's arguments.
 */
export function emailLink(publicUrl: string, data: Record<string, unknown>): string {
  const link = data.link;
  return typeof link === 'string' && /^\/(?!\/)[\x21-\x7e]*$/.test(link) ? `${publicUrl}${link}` : `${publicUrl}/`;
}

export function composeEmail(row: Pick<Notification, 'type' | 'title' | 'message' | 'data'>, publicUrl: string): { subject: string; text: string } {
  return {
    subject: `[CDSA] ${row.title}`,
    text: [
      row.message,
      '',
      `Open in CDSA: ${emailLink(publicUrl, row.data)}`,
      '',
      `You receive this e-mail because your CDSA notification preferences send ${row.type} notifications by e-mail.`,
      'Sign in to see the details; change the preference to stop these e-mails.',
    ].join('\n'),
  };
}

export interface EmailDeliveryDeps {
  db: Db;
  repository: Pick<NotificationRepository, 'findById' | 'markEmailed'>;
  transport: MailTransport;
  from: string;
  publicUrl: string;
  /** The recipient's address, if they are still an active user (the identity module). */
  contactOf: (userId: string) => Promise<{ email: string; isActive: boolean } | undefined>;
  logger: { warn(obj: object, msg: string): void };
  now?: () => Date;
}

/**
 * Sends the e-mail of one stored notification: the `notifications.email` job, retried with backoff by the job queue.
 * Idempotent as far as SMTP allows: a notification marked emailed is not sent again; one that was sent but whose mark
 * was lost (a crash in between) may be sent twice, never zero times while attempts remain.
 */
export function createEmailDelivery(deps: EmailDeliveryDeps) {
  const { db, repository, transport, from, publicUrl, contactOf, logger, now = () => new Date() } = deps;
  return {
    async deliver(notificationId: string, attempt = 1): Promise<'sent' | 'skipped'> {
      const row = await repository.findById(db, notificationId);
      // Deleted by its recipient, expired, or already sent: nothing (more) to tell.
      if (!row || row.emailedAt !== null || (row.expiresAt !== null && row.expiresAt.getTime() <= now().getTime())) return 'skipped';
      const contact = await contactOf(row.userId);
      if (!contact || !contact.isActive) return 'skipped';
      const { subject, text } = composeEmail(row, publicUrl);
      try {
        await transport.sendMail({ from, to: contact.email, subject, text, headers: { 'Auto-Submitted': 'auto-generated', 'X-CDSA-Notification-Type': row.type } });
      } catch (error) {
        const reason = describeSmtpError(error);
        logger.warn({ notification_id: row.id, attempt, reason }, 'notification e-mail not accepted by the SMTP server; it is retried');
        throw new Error(`SMTP delivery failed: ${reason}`);
      }
      await repository.markEmailed(db, row.id, now());
      return 'sent';
    },
  };
}

export type EmailDelivery = ReturnType<typeof createEmailDelivery>;

export function registerEmailJob(jobs: JobQueue, delivery: EmailDelivery): void {
  jobs.register<EmailJobData>(EMAIL_JOB, async (data, context) => {
    await delivery.deliver(data.notification_id, context.attempt);
  });
}

/** One job per notification row: the job id deduplicates a repeated enqueue. */
export function enqueueEmails(jobs: Pick<JobQueue, 'enqueue'>, notificationIds: readonly string[], backoffMs = EMAIL_BACKOFF_MS): Promise<unknown> {
  return Promise.all(
    notificationIds.map((id) =>
      jobs.enqueue<EmailJobData>(EMAIL_JOB, { notification_id: id }, { jobId: `${EMAIL_JOB}.${id}`, attempts: EMAIL_ATTEMPTS, backoffMs }),
    ),
  );
}
