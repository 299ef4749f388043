import { PII_TYPES, redactText } from '../../redaction/index.js';
import type { BuiltinTool } from './types.js';

export const REDACT_TEXT_MAX_LENGTH = 1_000_000;

/** The PII redactor as a tool: where personal data was, never what it was. No side effects, so no approval. */
export const redactTextTool: BuiltinTool = {
  name: 'redact_text',
  description:
    'Replaces personal and secret data in a text (names, addresses and places, organisations, e-mail addresses, phone numbers, SSNs, payment cards, IBANs, IP addresses, dates of birth, API keys) with placeholders such as [PERSON_1] or [EMAIL_1], and reports where each was (UTF-16 offsets).',
  inputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['text'],
    properties: { text: { type: 'string', maxLength: REDACT_TEXT_MAX_LENGTH, description: 'the text to redact' } },
  },
  outputSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['redacted_text', 'entities'],
    properties: {
      redacted_text: { type: 'string' },
      entities: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'start', 'end'],
          properties: {
            type: { type: 'string', enum: [...PII_TYPES] },
            start: { type: 'integer', minimum: 0 },
            end: { type: 'integer', minimum: 0 },
          },
        },
      },
    },
  },
  requiresApproval: false,
  options: [],
  seed: true,
  pure: true,
  async run(args) {
    const text = typeof args.text === 'string' ? args.text : '';
    const { redacted_text, entities } = redactText(text);
    return { redacted_text, entities: entities.map(({ type, start, end }) => ({ type, start, end })) };
  },
};
