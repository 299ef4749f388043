import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockEnv } from '../chat/helpers.js';
import { buildTestApp, usingPostgres, type TestApp } from '../helpers/app.js';
import { ROOT } from '../helpers/process.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { gatedWebhook, startSink, type Sink } from '../tools/helpers.js';

/**
 * The console in a real browser (Debian's Chromium driven by playwright-core) against the real app listening on a
 * port, on the embedded database, with the mock LLM speaking the OpenAI wire format. Runs in the embedded pass only:
 * the browser adds nothing on PostgreSQL that the API tests do not already cover, and it keeps the CI gate short.
 */
const CHROMIUM = process.env.CDSA_TEST_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-results', 'console');
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let mock: MockLlm;
let sink: Sink;
let t: TestApp;
let base: string;
let browser: Browser;
let analyst: TestUser;
let manager: TestUser;
let admin: TestUser;
const cspViolations: string[] = [];
const figures: string[] = [];

/** Polls like expect.poll, with room for a loaded machine (the default gives up after one second). */
function poll<T>(probe: () => T | Promise<T>, options: { timeout?: number } = {}) {
  return expect.poll(probe, { timeout: 20_000, ...options });
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
  });
  page.on('pageerror', (error) => cspViolations.push(`page error: ${error.message}`));
  return { context, page };
}

async function signIn(page: Page, user: TestUser): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel('Username or e-mail').fill(user.user.username);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

/** axe-core in the page (evaluated through the debugging protocol, so the page's CSP stays as it is). */
async function expectAccessible(page: Page, view: string): Promise<void> {
  await page.evaluate(axeSource);
  // A string, evaluated in the page: the test's own TypeScript has no DOM types.
  const violations = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((result) =>
    result.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })))`)) as Array<{
    id: string;
    impact: string;
    targets: string[];
  }>;
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(serious, `${view}: ${JSON.stringify(serious)}`).toEqual([]);
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
}

describe.skipIf(usingPostgres)('the web console in a browser', () => {
  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    mock = await startMockLlm({ models: ['mock-model'] });
    sink = await startSink();
    t = await buildTestApp({ env: mockEnv(mock.url, { OPENAI_LOCAL: 'true', TOOL_HTTP_ALLOWLIST: sink.hostPort }) });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const address = t.app.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    [analyst, manager, admin] = await Promise.all([
      createUser(t, { role: 'ANALYST', fullName: 'Ana Lyst' }),
      createUser(t, { role: 'MANAGER', fullName: 'Mona Nager' }),
      createUser(t, { role: 'ADMIN', fullName: 'Ada Min' }),
    ]);
    const tool = await t.app.inject({ method: 'POST', url: '/api/v1/tools', headers: admin.headers, payload: gatedWebhook(sink, 'transfer_funds') });
    expect(tool.statusCode, tool.body).toBe(201);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-dev-shm-usage'],
    });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await sink?.close();
    await mock?.close();
    if (figures.length > 0) console.log(`console budgets:\n  ${figures.join('\n  ')}`);
  });

  it('journey: upload, ask, gated tool, the manager is rung and approves, the analyst chat continues by itself', async () => {
    const a = await newPage();
    const m = await newPage();
    try {
      await Promise.all([signIn(a.page, analyst), signIn(m.page, manager)]);

      // The analyst uploads a document and watches it being indexed.
      await a.page.getByRole('link', { name: 'Documents' }).click();
      await a.page.locator('input[type=file]').setInputFiles({
        name: 'retention-policy.txt',
        mimeType: 'text/plain',
        buffer: Buffer.from('Retention policy.\n\nCustomer invoices are kept for seven years, then destroyed.\n'),
      });
      await a.page.getByRole('link', { name: 'retention-policy.txt' }).or(a.page.getByRole('link', { name: /retention/i })).first().waitFor();
      await poll(() => a.page.getByTestId('status').first().textContent(), { timeout: 120_000 }).toContain('indexed');

      // A question, answered by a streamed reply.
      await a.page.getByRole('link', { name: 'Chat' }).click();
      mock.script(textReply(['Customer invoices ', 'are kept ', 'for **seven years**', ', then destroyed.'], { chunkDelayMs: 40 }));
      await a.page.getByLabel('Message').fill('How long do we keep invoices?');
      await a.page.keyboard.press('Enter');
      await poll(() => a.page.getByTestId('answer').last().textContent(), { timeout: 15_000 }).toContain('seven years, then destroyed.');
      // Markdown rendered, as markup the page built itself.
      expect(await a.page.locator('.msg.assistant strong').last().textContent()).toBe('seven years');

      // The model asks for a gated tool: the chat waits for an approval.
      mock.script(toolCallReply('transfer_funds', { amount: 250, to: 'ACME Ltd' }));
      await a.page.getByLabel('Message').fill('Pay ACME Ltd 250 for the archive boxes.');
      await a.page.getByRole('button', { name: 'Send' }).click();
      await a.page.getByTestId('approval-pending').waitFor();
      await screenshot(a.page, 'chat-awaiting-approval');

      // The manager's bell rings without a reload.
      await poll(() => m.page.getByTestId('unread-count').textContent(), { timeout: 10_000 }).not.toBe('0');
      await m.page.getByRole('link', { name: 'Approvals' }).click();
      const card = m.page.getByTestId('approval').filter({ hasText: 'transfer_funds' });
      await card.waitFor();
      await poll(() => card.textContent()).toContain('ACME Ltd');
      // Who asked, by name; quorum progress.
      expect(await card.textContent()).toContain(`Ana Lyst (${analyst.user.username})`);
      expect(await card.textContent()).toContain('0 of 1 approvals');
      await screenshot(m.page, 'approvals-inbox');
      await expectAccessible(m.page, 'approvals');

      // The manager approves with a reason; the tool runs once and the analyst's chat continues by itself.
      mock.script(textReply(['Paid: ', '250 to ACME Ltd.']));
      await card.getByLabel('Reason (optional)').fill('Invoice checked');
      await card.getByRole('button', { name: 'Approve' }).click();
      await poll(() => a.page.getByTestId('answer').last().textContent(), { timeout: 15_000 }).toContain('Paid: 250 to ACME Ltd.');
      await expect(a.page.getByTestId('approval-pending').count()).resolves.toBe(0);
      expect(sink.calls).toHaveLength(1);
      expect(JSON.parse(sink.calls[0]!.body)).toMatchObject({ tool: 'transfer_funds', args: { amount: 250, to: 'ACME Ltd' } });
      await screenshot(a.page, 'chat');

      // The streamed-token budget: from a token's arrival in the page to its text in the DOM.
      const latencies = await a.page.evaluate(() => performance.getEntriesByName('cdsa:token-to-dom').map((e) => e.duration));
      expect(latencies.length).toBeGreaterThan(3);
      const sorted = [...latencies].sort((x, y) => x - y);
      figures.push(
        `streamed token to screen: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms over ${sorted.length} tokens (budget 50 ms)`,
      );
    } finally {
      await a.context.close();
      await m.context.close();
    }
  }, 300_000);

  it('chat: a reload keeps the session through the cookie alone and the view is interactive quickly', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, analyst);
      await page.goto(`${base}/chat`);
      await page.getByLabel('Message').waitFor();
      const interactive = await page.evaluate(() => performance.getEntriesByName('cdsa:chat-interactive')[0]?.startTime ?? -1);
      expect(interactive).toBeGreaterThan(0);
      figures.push(`chat view interactive after a full load: ${interactive.toFixed(0)} ms (budget 1000 ms)`);
      // Nothing about the session is readable by script: no token in storage, the cookie is HttpOnly.
      const stored = await page.evaluate('({ cookie: document.cookie, local: JSON.stringify(localStorage), session: JSON.stringify(sessionStorage) })');
      expect(stored).toEqual({ cookie: '', local: '{}', session: '{}' });
      const cookies = await context.cookies();
      expect(cookies.find((c) => c.name === 'cdsa_refresh')).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/api/v1/auth/refresh' });
      // The sessions list shows the journey's chat; opening it shows its stored messages.
      await page.getByRole('button', { name: /invoices/i }).first().click();
      await poll(() => page.locator('.log').textContent()).toContain('seven years');
      await expectAccessible(page, 'chat');
      await screenshot(page, 'chat-history');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('sign-in: a wrong password is a readable message; sign out ends the session', async () => {
    const { context, page } = await newPage();
    try {
      await page.goto(`${base}/`);
      await expectAccessible(page, 'sign-in');
      await screenshot(page, 'sign-in');
      await page.getByLabel('Username or e-mail').fill(analyst.user.username);
      await page.getByLabel('Password').fill('not-the-password-at-all');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await poll(() => page.getByRole('alert').textContent()).toMatch(/invalid/i);
      await page.getByLabel('Password').fill(analyst.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      await page.reload();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      expect((await context.cookies()).find((c) => c.name === 'cdsa_refresh')).toBeUndefined();
    } finally {
      await context.close();
    }
  }, 90_000);

  it('approvals: my requests show the decision and quorum', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, analyst);
      await page.getByRole('link', { name: 'Approvals' }).click();
      const card = page.getByTestId('approval').first();
      await poll(() => card.textContent()).toContain('APPROVED');
      expect(await card.textContent()).toContain('1 of 1 approvals');
      expect(await card.getByRole('button', { name: 'Approve' }).count()).toBe(0);
      await expectAccessible(page, 'my requests');
      await screenshot(page, 'approvals-mine');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('notifications: the list, mark all read, the bell goes to zero', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, manager);
      await page.getByRole('link', { name: /Notifications/ }).click();
      await page.getByRole('heading', { name: /Approval requested/ }).first().waitFor();
      await expectAccessible(page, 'notifications');
      await screenshot(page, 'notifications');
      await page.getByRole('button', { name: 'Mark all read' }).click();
      await poll(() => page.getByTestId('unread-count').textContent()).toBe('0');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('documents: list, detail with extracted text, share dialog, declassification request', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, analyst);
      await page.getByRole('link', { name: 'Documents' }).click();
      await page.getByRole('table').waitFor();
      await expectAccessible(page, 'documents');
      await screenshot(page, 'documents');
      await page.getByRole('link', { name: /retention/i }).first().click();
      await poll(() => page.locator('.doctext').textContent()).toContain('seven years');
      await page.getByRole('button', { name: 'Share…' }).click();
      await page.getByRole('dialog').waitFor();
      await expectAccessible(page, 'share dialog');
      await page.getByRole('dialog').getByRole('button', { name: 'Share' }).click();
      await poll(() => page.locator('main').textContent()).toContain('Shared with');
      await page.getByLabel('Label').selectOption('PUBLIC');
      await poll(() => page.getByRole('status').first().textContent()).toMatch(/Declassification requested/);
      await screenshot(page, 'document');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('audit: the event table, verify chain, charts', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, admin);
      await page.getByRole('link', { name: 'Audit' }).click();
      await page.getByRole('table').waitFor();
      await page.getByRole('button', { name: 'Verify chain' }).click();
      await poll(() => page.getByTestId('verify-result').textContent()).toMatch(/Chain intact/);
      await page.getByRole('img', { name: /Events per type/ }).waitFor();
      await page.getByLabel('Event type').fill('LOGIN_SUCCEEDED');
      await poll(async () => (await page.locator('tbody tr').allTextContents()).every((row) => row.includes('LOGIN_SUCCEEDED'))).toBe(true);
      await expectAccessible(page, 'audit');
      await screenshot(page, 'audit');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('vault: an admin adds a secret, a reveal asks for confirmation and says it is audited', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, admin);
      await page.getByRole('link', { name: 'Vault' }).click();
      await page.getByText(/No secrets yet/).waitFor();
      await page.getByLabel('Name').fill('crm_token');
      await page.getByLabel('Value').fill('s3cr3t-value-for-the-crm');
      await page.getByRole('button', { name: 'Add secret' }).click();
      await page.getByRole('cell', { name: 'crm_token' }).waitFor();
      await page.getByRole('button', { name: 'Reveal…' }).click();
      const dialog = page.getByRole('dialog');
      await poll(() => dialog.textContent()).toContain('audit trail');
      await expectAccessible(page, 'vault reveal');
      await dialog.getByRole('button', { name: 'Reveal the value' }).click();
      await poll(() => page.getByTestId('secret-value').textContent()).toContain('s3cr3t-value-for-the-crm');
      await dialog.getByRole('button', { name: 'Close' }).click();
      await expectAccessible(page, 'vault');
      await screenshot(page, 'vault');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('admin: users with role and clearance, tools, models', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, admin);
      await page.getByRole('link', { name: 'Admin' }).click();
      await page.getByLabel(`Clearance of ${analyst.user.username}`).selectOption('CONFIDENTIAL');
      await poll(() => page.getByRole('status').first().textContent()).toContain('clearance CONFIDENTIAL');
      await page.getByRole('cell', { name: /transfer_funds Transfers/ }).waitFor();
      await page.getByRole('cell', { name: /mock-model/ }).first().waitFor();
      await expectAccessible(page, 'admin');
      await screenshot(page, 'admin');
      const account = await t.app.inject({ url: `/api/v1/users/${analyst.user.id}`, headers: admin.headers });
      expect(account.json().clearance).toBe('CONFIDENTIAL');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('account: sign out everywhere ends the other browser too', async () => {
    const one = await newPage();
    const two = await newPage();
    try {
      const user = await createUser(t);
      await Promise.all([signIn(one.page, user), signIn(two.page, user)]);
      await one.page.getByRole('link', { name: 'Account' }).click();
      await expectAccessible(one.page, 'account');
      await screenshot(one.page, 'account');
      await one.page.getByRole('button', { name: 'Sign out everywhere' }).click();
      await one.page.getByRole('button', { name: 'Sign in' }).waitFor();
      await two.page.reload();
      await two.page.getByRole('button', { name: 'Sign in' }).waitFor();
    } finally {
      await one.context.close();
      await two.context.close();
    }
  }, 90_000);

  it('no page broke the Content-Security-Policy', () => {
    expect(cspViolations).toEqual([]);
  });
});
