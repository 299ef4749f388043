import http from 'node:http';
import { readSse, type SseReader } from '../helpers/sse.js';

/** A real HTTP client reading a text/event-stream as it arrives (what EventSource does, minus reconnects). */
export interface SseConnection extends SseReader {
  notifications(): { seq: number; [key: string]: unknown }[];
  /** Stops reading (a slow client); the server's writes back up. */
  pause(): void;
  resume(): void;
  close(): void;
}

export function openSse(url: string, headers: Record<string, string> = {}, agent?: http.Agent): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers }, agent }, (response) => {
      const reader = readSse(response);
      resolve({
        ...reader,
        notifications: () =>
          reader.events.filter((event) => event.event === 'notification').map((event) => event.data as { seq: number; [key: string]: unknown }),
        pause() {
          response.pause();
        },
        resume() {
          response.resume();
        },
        close() {
          request.destroy();
        },
      });
    });
    request.on('error', reject);
  });
}
