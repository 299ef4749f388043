/**
 * The console's one way to the API. The access token lives in this module's memory only; the refresh token is an
 * HttpOnly cookie the page never sees, sent by the browser to POST /api/v1/auth/refresh alone, with the custom header
 * X-CDSA-CSRF: 1 that the server requires for a cookie refresh.
 */

export const API = '/api/v1';
const CSRF = { 'x-cdsa-csrf': '1' } as const;

export type Role = 'ANALYST' | 'MANAGER' | 'ADMIN';
export interface User {
  id: string;
  username: string;
  email: string;
  full_name: string | null;
  role: Role;
  clearance: string;
  is_active: boolean;
  mfa_enabled: boolean;
  created_at: string;
  last_login_at: string | null;
}

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  errors?: Array<{ pointer: string; detail: string }>;
  request_id?: string;
}

/** An API answer that was not 2xx, carrying its problem details. */
export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(readableProblem(problem));
  }
  get status(): number {
    return this.problem.status;
  }
}

/** A problem as one sentence a person can act on (field errors included). */
export function readableProblem(problem: Problem): string {
  const base = problem.detail || problem.title || `Request failed (${problem.status})`;
  const fields = (problem.errors ?? []).map((e) => `${e.pointer.replace(/^\//, '') || 'request'} ${e.detail}`);
  const text = fields.length > 0 ? `${base}: ${fields.join('; ')}` : base;
  if (problem.status === 429) return `${text}. Wait a moment and try again.`;
  if (problem.status >= 500 && problem.request_id) return `${text} (request ${problem.request_id})`;
  return text;
}

export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message === 'Failed to fetch' ? 'The server cannot be reached. Check your connection.' : error.message;
  return String(error);
}

type Listener = (user: User | null) => void;

let accessToken: string | null = null;
let expiresAt = 0;
let currentUser: User | null = null;
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<Listener>();

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function setSession(token: string | null, expiresIn: number, user: User | null): void {
  accessToken = token;
  expiresAt = token ? Date.now() + expiresIn * 1000 : 0;
  currentUser = user;
  for (const listener of listeners) listener(user);
}

export function user(): User | null {
  return currentUser;
}

async function problemOf(response: Response): Promise<Problem> {
  try {
    const body = (await response.json()) as Problem;
    return { ...body, status: body.status ?? response.status };
  } catch {
    return { status: response.status, title: response.statusText };
  }
}

interface SessionBody {
  access_token: string;
  expires_in: number;
  user?: User;
}

/** The cookie refresh; one at a time however many requests found the token expired. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const response = await fetch(`${API}/auth/refresh`, {
        method: 'POST',
        headers: { ...CSRF, 'content-type': 'application/json' },
        body: '{}',
        credentials: 'same-origin',
      });
      if (!response.ok) {
        setSession(null, 0, null);
        return false;
      }
      const pair = (await response.json()) as SessionBody;
      accessToken = pair.access_token;
      expiresAt = Date.now() + pair.expires_in * 1000;
      if (!currentUser) {
        const me = await request<User>('GET', '/auth/me');
        setSession(pair.access_token, pair.expires_in, me);
      }
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export interface RequestOptions {
  body?: unknown;
  form?: FormData;
  signal?: AbortSignal;
  /** Return the raw response (streams, downloads). */
  raw?: boolean;
}

async function send(method: string, path: string, options: RequestOptions): Promise<Response> {
  const headers: Record<string, string> = {};
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  let body: BodyInit | undefined;
  if (options.form) body = options.form;
  else if (options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  return fetch(`${API}${path}`, { method, headers, body, signal: options.signal, credentials: 'same-origin' });
}

/** An authenticated call: refreshes once on an expired token, throws ApiError with the problem otherwise. */
export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  if (accessToken && Date.now() > expiresAt - 10_000) await refresh();
  let response = await send(method, path, options);
  if (response.status === 401 && accessToken && !path.startsWith('/auth/mfa/step-up')) {
    const problem = await problemOf(response.clone());
    if (problem.type !== 'urn:cdsa:problem:step-up-required' && (await refresh())) response = await send(method, path, options);
  }
  if (!response.ok) throw new ApiError(await problemOf(response));
  if (options.raw) return response as T;
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>('GET', path, { signal });
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} });
export const put = <T>(path: string, body?: unknown) => request<T>('PUT', path, { body: body ?? {} });
export const patch = <T>(path: string, body: unknown) => request<T>('PATCH', path, { body });
export const del = <T>(path: string) => request<T>('DELETE', path);

export type LoginOutcome = { kind: 'signed-in'; user: User } | { kind: 'mfa'; mfaToken: string };

async function publicPost(path: string, body: unknown): Promise<Response> {
  return fetch(`${API}${path}`, {
    method: 'POST',
    headers: { ...CSRF, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
}

function adopt(body: SessionBody & { user: User }): LoginOutcome {
  setSession(body.access_token, body.expires_in, body.user);
  return { kind: 'signed-in', user: body.user };
}

export async function login(username: string, password: string): Promise<LoginOutcome> {
  const response = await publicPost('/auth/login', { username, password });
  if (!response.ok) throw new ApiError(await problemOf(response));
  const body = (await response.json()) as (SessionBody & { user: User }) | { mfa_required: true; mfa_token: string };
  if ('mfa_required' in body) return { kind: 'mfa', mfaToken: body.mfa_token };
  return adopt(body);
}

export async function verifyMfa(mfaToken: string, code: string): Promise<LoginOutcome> {
  const isRecovery = !/^\d{6}$/.test(code.trim());
  const response = await publicPost('/auth/mfa/verify', isRecovery ? { mfa_token: mfaToken, recovery_code: code.trim() } : { mfa_token: mfaToken, code: code.trim() });
  if (!response.ok) throw new ApiError(await problemOf(response));
  return adopt((await response.json()) as SessionBody & { user: User });
}

/** The identity provider sent the browser back to the console: finish the sign-in with its query. */
export async function finishOidc(search: string): Promise<LoginOutcome> {
  const response = await fetch(`${API}/auth/oidc/callback${search}`, { headers: CSRF, credentials: 'same-origin' });
  if (!response.ok) throw new ApiError(await problemOf(response));
  const body = (await response.json()) as (SessionBody & { user: User }) | { mfa_required: true; mfa_token: string };
  if ('mfa_required' in body) return { kind: 'mfa', mfaToken: body.mfa_token };
  return adopt(body);
}

export async function logout(everywhere = false): Promise<void> {
  try {
    await request('POST', everywhere ? '/auth/logout-everywhere' : '/auth/logout');
  } finally {
    setSession(null, 0, null);
  }
}

export async function stepUp(code: string): Promise<void> {
  await request('POST', '/auth/mfa/step-up', { body: /^\d{6}$/.test(code.trim()) ? { code: code.trim() } : { recovery_code: code.trim() } });
}

export async function streamTicket(): Promise<string> {
  const { ticket } = await post<{ ticket: string }>('/auth/stream-ticket');
  return ticket;
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/** Reads a `text/event-stream` response body event by event (fetch streams: POST bodies and headers are possible). */
export async function* readEvents(response: Response): AsyncGenerator<SseEvent> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length === 0) continue;
      try {
        yield { event, data: JSON.parse(data.join('\n')) };
      } catch {
        yield { event, data: data.join('\n') };
      }
    }
  }
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

export function hasRole(u: User | null, role: Role): boolean {
  const order: Role[] = ['ANALYST', 'MANAGER', 'ADMIN'];
  return Boolean(u) && order.indexOf(u!.role) >= order.indexOf(role);
}

/** A multipart upload with progress (fetch cannot report upload progress; XMLHttpRequest can). */
export async function upload<T>(path: string, form: FormData, onProgress: (fraction: number) => void): Promise<T> {
  if (accessToken && Date.now() > expiresAt - 10_000) await refresh();
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${API}${path}`);
    if (accessToken) xhr.setRequestHeader('authorization', `Bearer ${accessToken}`);
    xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    xhr.onerror = () => reject(new Error('The upload failed: the server cannot be reached.'));
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as T);
      else reject(new ApiError({ status: xhr.status, ...(body as object) }));
    };
    xhr.send(form);
  });
}
