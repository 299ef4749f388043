import type { TurnEvent } from './turn.js';

/** One event as the chat SSE contract writes it: the event name and its JSON data. */
export interface SseChatEvent {
  event: TurnEvent['type'];
  data: unknown;
}

/**
 * The chat SSE contract: each turn event becomes the SSE event of the same name with the event's fields as its data;
 * an error becomes the problem object `toProblem` makes of it.
 */
export function toSseEvent(event: TurnEvent, toProblem: (error: unknown) => unknown): SseChatEvent {
  if (event.type === 'error') return { event: 'error', data: toProblem(event.error) };
  const { type, ...data } = event;
  return { event: type, data };
}
