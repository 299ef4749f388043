import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { generate } from 'otplib';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mockEnv } from '../chat/helpers.js';
import { buildTestApp, usingPostgres, type TestApp } from '../helpers/app.js';
import { ROOT } from '../helpers/process.js';
import { createUser, type TestUser } from '../helpers/users.js';
import { uploadIndexed } from '../documents/helpers.js';
import { EVERYTHING_BIN } from '../mcp/helpers.js';
import { startMockLlm, textReply, toolCallReply, type MockLlm } from '../mock-llm/server.js';
import { execute, gatedWebhook, startSink, type Sink } from '../tools/helpers.js';

/**
 * The console in a real browser (Debian's Chromium driven by playwright-core) against the real app listening on a
 * port, on the embedded database, with the mock LLM speaking the OpenAI wire format as the cloud model and Ollama's as
 * the local fallback (LOCAL_FALLBACK_MODEL) for content above CLOUD_MAX_LABEL. Runs in the embedded pass only: the
 * browser adds nothing on PostgreSQL that the API tests do not already cover, and it keeps the CI gate short.
 */
const LOCAL = 'ollama/mock-model';
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
    t = await buildTestApp({
      env: mockEnv(mock.url, {
        OPENAI_LOCAL: 'false',
        CLOUD_MAX_LABEL: 'INTERNAL',
        LOCAL_FALLBACK_MODEL: LOCAL,
        TOOL_HTTP_ALLOWLIST: sink.hostPort,
        MCP_STDIO_COMMANDS: EVERYTHING_BIN,
      }),
    });
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

  it('grounded chat: documents chosen for the answer, numbered citations that open the cited passage, the access log', async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, analyst);
      await page.getByRole('button', { name: 'Answer from documents…' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel(/retention/i).check();
      await expectAccessible(page, 'document picker');
      await dialog.getByRole('button', { name: 'Use these documents' }).click();
      await page.getByTestId('chosen-document').filter({ hasText: 'retention' }).waitFor();

      mock.script(textReply(['Invoices are kept ', 'for seven years [1].']));
      await page.getByLabel('Message').fill('How long are invoices kept, according to the policy?');
      await page.keyboard.press('Enter');
      const answer = page.getByTestId('answer').last();
      await poll(() => answer.textContent()).toContain('for seven years');
      // The model was given the chosen document's passage, and the answer's marker links to it as source 1.
      expect(JSON.stringify(mock.chatRequests().at(-1)!.body)).toContain('kept for seven years, then destroyed');
      expect(await answer.locator('a.cite').textContent()).toBe('[1]');
      expect(await answer.getByRole('list', { name: 'Sources' }).textContent()).toContain('retention');
      await page.getByTestId('pinned').waitFor();
      await screenshot(page, 'chat-cited');

      await answer.locator('a.cite').click();
      await page.waitForURL(/\/documents\/[0-9a-f-]+\?chunk=[0-9a-f-]+$/);
      await poll(() => page.getByTestId('cited-passage').textContent()).toContain('seven years');
      expect(await page.getByTestId('cited-chunk').textContent()).toContain('seven years');
      // The owner sees who read the document's content (the chat's pinned passages, this viewer), by name.
      await poll(() => page.getByTestId('access-log').locator('tbody tr').count()).toBeGreaterThan(0);
      expect(await page.getByTestId('access-log').locator('tbody tr').first().textContent()).toMatch(/youcontent read/);
      await expectAccessible(page, 'document at a cited passage');
      await screenshot(page, 'document-cited');
    } finally {
      await context.close();
    }
  }, 120_000);

  it('routing: a confidential document sends the chat to the local model with a notice; without a usable fallback the turn is refused', async () => {
    const doc = await uploadIndexed(t, analyst, 'heron-dossier.txt', 'The HERON acquisition closes in March at a price of 41 million.', { label: 'CONFIDENTIAL' }, 120_000);
    expect(doc.status).toBe('indexed');
    const { context, page } = await newPage();
    try {
      await signIn(page, analyst);
      await page.getByRole('button', { name: 'Answer from documents…' }).click();
      await page.getByRole('dialog').getByLabel(/heron/i).check();
      await page.getByRole('dialog').getByRole('button', { name: 'Use these documents' }).click();
      const before = mock.chatRequests().length;
      mock.script(textReply(['HERON closes in March [1].']));
      await page.getByLabel('Message').fill('When does HERON close?');
      await page.keyboard.press('Enter');
      await poll(() => page.getByTestId('answer').last().textContent()).toContain('HERON closes in March');
      expect(await page.getByTestId('routing-notice').first().textContent()).toContain(`Routed to the local model ${LOCAL} instead of openai/mock-model`);
      expect(mock.chatRequests().slice(before).map((r) => r.wire)).toEqual(['ollama']);
      expect(await page.locator('.conversation-head').textContent()).toContain('CONFIDENTIAL');
      await screenshot(page, 'chat-routed');

      // An administrator switches the fallback off: the next turn is refused before any model is called.
      const setFallback = (enabled: boolean) =>
        t.app.inject({ method: 'POST', url: '/api/v1/llm/models', headers: admin.headers, payload: { id: LOCAL, is_enabled: enabled } });
      const off = await setFallback(false);
      expect(off.statusCode, off.body).toBeLessThan(300);
      try {
        const calls = mock.chatRequests().length;
        await page.getByLabel('Message').fill('And the price?');
        await page.keyboard.press('Enter');
        await poll(() => page.getByTestId('routing-notice').last().textContent()).toMatch(/^Refused, nothing was sent to openai\/mock-model: .*CONFIDENTIAL/);
        expect(await page.getByTestId('routing-notice').last().getAttribute('role')).toBe('alert');
        expect(mock.chatRequests().length).toBe(calls);
        await expectAccessible(page, 'chat with routing notices');
        await screenshot(page, 'chat-refused');
      } finally {
        expect((await setFallback(true)).statusCode).toBeLessThan(300);
      }

      // As the refusal suggests, a local model chosen for the turn takes the content directly: nothing to route.
      await page.getByLabel('Model').selectOption(LOCAL);
      const sentBefore = mock.chatRequests().length;
      mock.script(textReply(['The price is 41 million [1].']));
      await page.getByLabel('Message').fill('And the price, then?');
      await page.keyboard.press('Enter');
      await poll(() => page.getByTestId('answer').last().textContent()).toContain('41 million');
      expect(mock.chatRequests().slice(sentBefore).map((r) => r.wire)).toEqual(['ollama']);
      expect(await page.getByTestId('routing-notice').count()).toBe(2);
    } finally {
      await context.close();
    }
  }, 240_000);

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

  it('approvals: a request shows how its arguments differ from the earlier one; deciding asks for a step-up code', async () => {
    const pending = await execute(t, analyst, 'transfer_funds', { amount: 900, to: 'ACME Holdings' });
    expect(pending.statusCode, pending.body).toBe(202);
    const account = await createUser(t, { role: 'MANAGER', fullName: 'Max Factor' });
    const { context, page } = await newPage();
    try {
      await signIn(page, account);
      // A second factor enrolled after this browser signed in: its session was never verified with it.
      const enrol = await t.app.inject({ method: 'POST', url: '/api/v1/auth/mfa/totp/enroll', headers: account.headers });
      expect(enrol.statusCode, enrol.body).toBe(200);
      const { secret } = enrol.json<{ secret: string }>();
      const step = () => Math.floor(Date.now() / 1000);
      const confirm = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/mfa/totp/confirm',
        headers: account.headers,
        payload: { code: await generate({ secret, epoch: step() - 30 }) },
      });
      expect(confirm.statusCode, confirm.body).toBe(200);

      await page.getByRole('link', { name: 'Approvals' }).click();
      const card = page.getByTestId('approval').filter({ hasText: '900' });
      await card.waitFor();
      const diff = card.getByTestId('args-diff');
      await poll(() => diff.textContent()).toContain('approved request by the same requester');
      expect(await diff.textContent()).toMatch(/amount\s*250\s*→\s*900/);
      expect(await diff.textContent()).toMatch(/to\s*ACME Ltd\s*→\s*ACME Holdings/);
      expect(await diff.locator('code').allTextContents()).toEqual(['amount', 'to']);
      await screenshot(page, 'approvals-diff');

      await card.getByRole('button', { name: 'Approve' }).click();
      await card.getByTestId('step-up').waitFor();
      await poll(() => card.getByRole('alert').textContent()).toContain('needs a fresh code from your authenticator app');
      await expectAccessible(page, 'approvals step-up');
      await card.getByLabel('Authenticator code').fill(await generate({ secret, epoch: step() }));
      await card.getByRole('button', { name: 'Approve' }).click();
      await poll(() => page.getByTestId('approval').filter({ hasText: '900' }).count()).toBe(0);
      const approval = await t.app.inject({ url: `/api/v1/approvals/${pending.json<{ approval_id: string }>().approval_id}`, headers: analyst.headers });
      expect(approval.json()).toMatchObject({ status: 'APPROVED' });
    } finally {
      await context.close();
    }
  }, 120_000);

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

      // The routing policy, read-only, as this instance applies it, with the routing test's turns.
      const policy = page.getByTestId('routing-policy');
      await poll(() => policy.textContent()).toContain(LOCAL);
      expect(await policy.textContent()).toMatch(/CLOUD_MAX_LABEL\)INTERNAL\./);
      expect(await page.getByTestId('model-access').textContent()).toContain('Every role may use every enabled model');
      expect(await page.locator('.routed').textContent()).toMatch(/refused.*routed/s);

      // An MCP server over stdio: registered, its tools discovered, synced, edited, removed.
      await page.getByLabel('Server name').fill('every');
      await page.getByLabel('Transport').selectOption('stdio');
      await page.getByLabel('Command (one of MCP_STDIO_COMMANDS)').fill(EVERYTHING_BIN);
      await page.getByLabel('Arguments (one a line)').fill('stdio');
      await page.getByRole('button', { name: 'Register and discover tools' }).click();
      const server = page.getByTestId('mcp-server').filter({ hasText: 'every' });
      await poll(() => page.getByText(/every registered: \d+ tools discovered/).count(), { timeout: 60_000 }).toBe(1);
      expect(await server.textContent()).toContain('ok MCP');
      expect((await t.app.inject({ url: '/api/v1/tools/every.echo', headers: admin.headers })).statusCode).toBe(200);
      // The discovered tools are in the tool table at once, gated by default.
      await poll(() => page.getByRole('row', { name: /every\.echo/ }).textContent()).toContain('1 approver(s)');
      await server.getByRole('button', { name: 'Sync every' }).click();
      await poll(() => page.getByText(/every synced: \d+ tools/).count(), { timeout: 60_000 }).toBe(1);
      await server.getByRole('button', { name: 'Edit every' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel(/Enabled/).uncheck();
      await expectAccessible(page, 'MCP server dialog');
      await dialog.getByRole('button', { name: 'Save' }).click();
      await poll(() => server.textContent()).toContain('disabled');

      await expectAccessible(page, 'admin');
      await screenshot(page, 'admin');
      await server.getByRole('button', { name: 'Delete every' }).click();
      await server.getByRole('button', { name: 'Remove every and its tools' }).click();
      await poll(() => page.getByTestId('mcp-server').count()).toBe(0);
      expect((await t.app.inject({ url: '/api/v1/tools/every.echo', headers: admin.headers })).statusCode).toBe(404);
      const account = await t.app.inject({ url: `/api/v1/users/${analyst.user.id}`, headers: admin.headers });
      expect(account.json().clearance).toBe('CONFIDENTIAL');
    } finally {
      await context.close();
    }
  }, 90_000);

  it('API keys: the key shown once with copy, listed by prefix, revoked; an administrator revokes anyone\'s', async () => {
    const own = await newPage();
    const other = await newPage();
    try {
      await own.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
      await signIn(own.page, analyst);
      const page = own.page;
      await page.getByRole('link', { name: 'Account' }).click();
      await page.getByText('No API keys yet').waitFor();
      const create = async (name: string) => {
        await page.getByLabel('Key name').fill(name);
        await page.getByRole('button', { name: 'Create key' }).click();
        await page.getByTestId('new-key').waitFor();
        return (await page.getByTestId('new-key').textContent())!;
      };
      await page.getByRole('checkbox', { name: /^mcp\b/ }).check();
      const key = await create('nightly-report');
      expect(key).toMatch(/^cdsa_[0-9A-Za-z]{20,}$/);
      await page.getByRole('button', { name: 'Copy the key' }).click();
      await poll(() => page.evaluate('navigator.clipboard.readText()')).toBe(key);
      const row = page.getByTestId('api-key').filter({ hasText: 'nightly-report' });
      await row.waitFor();
      expect(await row.textContent()).toContain('mcp');
      expect(await row.textContent()).not.toContain(key);
      await expectAccessible(page, 'API keys');
      await screenshot(page, 'api-keys');
      await page.getByRole('button', { name: 'I have stored it' }).click();
      expect(await page.getByTestId('new-key').count()).toBe(0);

      await create('laptop');
      await page.getByRole('button', { name: 'Revoke laptop' }).click();
      await page.getByRole('button', { name: 'Revoke laptop now' }).click();
      await poll(() => page.getByTestId('api-key').filter({ hasText: 'laptop' }).count()).toBe(0);
      await poll(() => page.getByRole('status').filter({ hasText: 'laptop is revoked' }).count()).toBe(1);

      // An administrator sees the analyst's remaining key and revokes it.
      await signIn(other.page, admin);
      await other.page.getByRole('link', { name: 'Admin' }).click();
      await other.page.getByLabel('Keys of').selectOption({ label: `Ana Lyst (${analyst.user.username})` });
      await other.page.getByRole('button', { name: 'Revoke nightly-report' }).click();
      await other.page.getByRole('button', { name: 'Revoke nightly-report now' }).click();
      await poll(() => other.page.getByText('has no API keys').count()).toBe(1);
      const left = await t.app.inject({ url: '/api/v1/api-keys', headers: analyst.headers });
      expect(left.json().items).toEqual([]);
    } finally {
      await own.context.close();
      await other.context.close();
    }
  }, 120_000);

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
