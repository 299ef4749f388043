import { randomUUID } from 'node:crypto';
import http from 'node:http';

/**
 * The environment the chat benchmarks start the production server with: the mock as the (cloud) OpenAI provider, an
 * administrator from the start, a daily budget that every turn checks, and rate limits no benchmark reaches.
 */
export function benchServerEnv(options: { port: number; dataDir: string; mockUrl: string; databaseUrl?: string; redisUrl?: string }): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PORT: String(options.port),
    DATA_DIR: options.dataDir,
    DATABASE_URL: options.databaseUrl ?? '',
    REDIS_URL: options.redisUrl ?? '',
    LOG_LEVEL: 'warn',
    REGISTRATION_MODE: 'open',
    MFA_REQUIRED_ROLES: '',
    // An administrator from the start: no first-run setup banner.
    CDSA_ADMIN_USERNAME: 'bench_admin',
    CDSA_ADMIN_EMAIL: 'bench_admin@example.test',
    CDSA_ADMIN_PASSWORD: `Bench-admin-${randomUUID()}`,
    OPENAI_BASE_URL: `${options.mockUrl}/v1`,
    OPENAI_API_KEY: 'sk-bench-0123456789abcdef',
    OPENAI_LOCAL: 'false',
    OLLAMA_BASE_URL: '',
    LLM_DEFAULT_MODEL: 'openai/mock-model',
    // A budget, so every turn start checks it as a deployment with one would.
    LLM_DAILY_TOKEN_BUDGET: '1000000000',
    RATE_LIMIT_REQUESTS: '10000000',
    AUTH_RATE_LIMIT_REQUESTS: '10000000',
    CHAT_RATE_LIMIT_REQUESTS: '10000000',
    LLM_REQUEST_TIMEOUT_MS: '60000',
  };
}

/** POSTs and calls `onEvent` for each SSE event as it arrives; resolves with the status at the end of the response. */
export function postSse(agent: http.Agent, url: string, headers: Record<string, string>, body: string, onEvent: (event: string, data: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (response) => {
        let buffer = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = 'message';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (data !== '') onEvent(event, data);
          }
        });
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}
