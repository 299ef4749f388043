import fp from 'fastify-plugin';
import { neighbour } from '../wiring.js';
import { withGroupedWrites } from './chat.grouped-writes.js';
import { createChatRepository } from './chat.repository.js';
import { loadRedactionData } from '../redaction/index.js';
import { createDetectionOffload } from '../redaction/detection-offload.js';
import { loadTokenizer } from './chat.tokens.js';
import { chatRoutes } from './chat.routes.js';
import { documentsKnowledge } from './documents-knowledge.js';
import { createGrounding } from './grounded-turn.js';
import {
  createChatService,
  messageCitationsAad,
  messageContentAad,
  messageToolCallsAad,
  sessionTitleAad,
  sessionVaultAad,
  type ChatService,
} from './chat.service.js';

export type { ChatService } from './chat.service.js';

/** Turns running outside chat's own routes (the OpenAI-compatible /v1), so shutdown waits for them as for its own. */
export interface ChatTurnTracker {
  /** A request still running (never rejects). */
  track(turn: Promise<unknown>): void;
  /** An open stream and how to end it at once; returns the function that forgets it. */
  trackStream(end: () => void): () => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    chat: ChatService;
    chatTurns: ChatTurnTracker;
  }
}

/**
 * How long, past the grace period, shutdown waits for running turns: at the end of the grace period their tool calls
 * stop waiting (recorded as interrupted), and storing that takes moments.
 */
const AFTER_GRACE_WAIT_MS = 2_000;

/**
 * Chat sessions and streaming turns. Content is encrypted with the vault's field encryption (columns registered for key
 * rotation); tools are offered through the tools module's `app.chatTools`, which registers later.
 */
export const chatModule = fp(
  async (app) => {
    const cipher = app.fieldCipher;
    cipher.registerEncryptedColumn({
      name: 'chat_messages.content',
      table: 'chat_messages',
      column: 'content',
      aad: (row) => messageContentAad(row.id),
    });
    cipher.registerEncryptedColumn({
      name: 'chat_messages.tool_calls',
      table: 'chat_messages',
      column: 'tool_calls',
      aad: (row) => messageToolCallsAad(row.id),
    });
    cipher.registerEncryptedColumn({
      name: 'chat_sessions.title',
      table: 'chat_sessions',
      column: 'title',
      aad: (row) => sessionTitleAad(row.id),
    });
    cipher.registerEncryptedColumn({
      name: 'chat_sessions.placeholder_vault',
      table: 'chat_sessions',
      column: 'placeholder_vault',
      aad: (row) => sessionVaultAad(row.id),
    });

    cipher.registerEncryptedColumn({
      name: 'chat_messages.citations',
      table: 'chat_messages',
      column: 'citations',
      aad: (row) => messageCitationsAad(row.id),
    });

    // Documents register after chat: their service is reached when a turn needs it.
    const documents = neighbour(app, 'documents');
    const knowledge = documentsKnowledge(documents);
    const grounding = createGrounding({
      knowledge: () => knowledge,
      llm: app.llm,
      cloudMaxLabel: app.config.llm.cloudMaxLabel,
      localFallbackModel: app.config.llm.localFallbackModel,
    });

    // Its workers start with the first long text (which is detected in place meanwhile), not at start-up: most
    // instances, and every test, never need them.
    const detection = createDetectionOffload({ workers: app.config.llm.redactionWorkers, minChars: app.config.llm.redactionOffloadMinChars, logger: app.log });
    app.addHook('onClose', async () => {
      await detection.close();
    });
    const chat = createChatService({
      db: app.infra.database.db,
      // A turn's two hot writes are grouped across concurrent turns; everything else is the plain repository.
      repository: withGroupedWrites(createChatRepository(), app.infra.database.db),
      audit: app.audit,
      llm: app.llm,
      cipher,
      tools: neighbour(app, 'chatTools'),
      redactCloudPrompts: app.config.llm.redactCloudPrompts,
      logger: app.log,
      grounding,
      detection,
    });
    app.decorate('chat', chat);

    // Building the tokenizer's rank table takes most of a second of CPU: a serving instance does it right after it
    // starts listening rather than during somebody's first chat (commands and tests that never listen skip it).
    app.addHook('onListen', async () => {
      loadTokenizer().catch((error: unknown) => {
        app.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not load the tokenizer');
      });
      // The same for the redactor's word lists (a few hundred ms, once), which the first redaction would otherwise pay.
      setImmediate(() => {
        try {
          loadRedactionData();
        } catch (error) {
          app.log.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not load the redaction word lists');
        }
      });
    });

    const running = new Set<Promise<unknown>>();
    const openStreams = new Set<() => void>();
    // Runs after the infrastructure's preClose, which has asked every open stream to stop its turn.
    app.addHook('preClose', async () => {
      if (running.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, app.config.shutdownGraceMs + AFTER_GRACE_WAIT_MS);
        });
        await Promise.race([Promise.allSettled([...running]), timeout]);
        clearTimeout(timer);
      }
      // A turn that could not finish in time: its stream still ends with `done`, as the contract promises.
      for (const end of [...openStreams]) end();
    });

    const tracker: ChatTurnTracker = {
      track: (turn) => {
        running.add(turn);
        void turn.finally(() => running.delete(turn));
      },
      trackStream: (end) => {
        openStreams.add(end);
        return () => openStreams.delete(end);
      },
    };
    app.decorate('chatTurns', tracker);

    app.apiV1.routes(chatRoutes, { chat, rateLimit: app.config.llm.chatRateLimit, ...tracker });
  },
  { name: 'module-chat', dependencies: ['infra', 'auth', 'module-audit', 'module-vault', 'module-llm'] },
);
