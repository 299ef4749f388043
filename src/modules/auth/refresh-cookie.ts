import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The browser's refresh token (CONTRACT §11): an `HttpOnly; SameSite=Strict` cookie scoped to the refresh path, so
 * script in the page never sees it and no other request carries it. A cookie alone is never enough: the refresh also
 * needs `X-CDSA-CSRF: 1`, a header a cross-site form cannot send and a cross-origin script cannot send without a CORS
 * preflight that this service refuses.
 */
export const REFRESH_COOKIE = 'cdsa_refresh';
export const REFRESH_COOKIE_PATH = '/api/v1/auth/refresh';
export const CSRF_HEADER = 'x-cdsa-csrf';

/** A request from the console: it asks for (or presents) the refresh token as a cookie. */
export function wantsCookie(request: FastifyRequest): boolean {
  return request.headers[CSRF_HEADER] === '1';
}

export function readRefreshCookie(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === REFRESH_COOKIE) return value.join('=') || undefined;
  }
  return undefined;
}

function cookie(request: FastifyRequest, value: string, maxAgeSeconds: number): string {
  // Secure whenever the request came over TLS (directly, or through a trusted proxy's X-Forwarded-Proto).
  const secure = request.protocol === 'https' ? '; Secure' : '';
  return `${REFRESH_COOKIE}=${value}; Path=${REFRESH_COOKIE_PATH}; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${secure}`;
}

/**
 * Moves the refresh token of a session response into the cookie: the body keeps its shape but its `refresh_token` is
 * empty, so the page holds only the access token, in memory.
 */
export function moveRefreshTokenToCookie<T extends { refresh_token: string }>(
  request: FastifyRequest,
  reply: FastifyReply,
  body: T,
  maxAgeSeconds: number,
): T {
  void reply.header('set-cookie', cookie(request, body.refresh_token, maxAgeSeconds)).header('cache-control', 'no-store');
  return { ...body, refresh_token: '' };
}

export function clearRefreshCookie(request: FastifyRequest, reply: FastifyReply): void {
  void reply.header('set-cookie', cookie(request, '', 0));
}
