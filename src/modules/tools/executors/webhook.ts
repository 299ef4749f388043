import type { FieldError } from '../../../lib/errors.js';
import { checkEgressUrl, EgressError } from '../egress.js';
import { callWebhook, isReservedWebhookHeader } from '../webhook.js';
import type { ToolExecutor } from './types.js';

const BASE = '/implementation';
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;

/** `webhook`: `POST url {tool, args, execution_id}`, signed with the vault secret `secret_name` when it has one. */
export function createWebhookExecutor(): ToolExecutor {
  return {
    type: 'webhook',

    validate(implementation, { allowlist }) {
      const errors: FieldError[] = [];
      if (implementation.url === undefined) {
        errors.push({ pointer: `${BASE}/url`, detail: 'is required for a webhook tool' });
      } else {
        try {
          checkEgressUrl(implementation.url, allowlist);
        } catch (error) {
          if (!(error instanceof EgressError)) throw error;
          errors.push({ pointer: `${BASE}/url`, detail: error.message });
        }
      }
      for (const [name, value] of Object.entries(implementation.headers ?? {})) {
        if (!HEADER_NAME.test(name) || isReservedWebhookHeader(name) || typeof value !== 'string' || /[\r\n]/.test(value)) {
          errors.push({ pointer: `${BASE}/headers/${name}`, detail: 'is not a header this tool may set' });
        }
      }
      return errors;
    },

    options() {
      return ['url', 'headers', 'secret_name', 'timeout_ms', 'max_response_bytes'];
    },

    run(tool, args, context) {
      return callWebhook({
        toolName: tool.name,
        args,
        executionId: context.executionId,
        implementation: tool.implementation,
        allowlist: context.allowlist,
        signal: context.signal,
        useSecret: context.useSecret,
      });
    },
  };
}
