import type { Db, DbOrTx } from '../../db/client.js';
import { createWriteBatcher, type WriteBatcher } from '../../db/write-batcher.js';
import type { ChatRepository, NewMessage, TurnStart } from './chat.repository.js';

/**
 * The chat repository with the two writes every turn makes, storing the user's message and storing the answer, grouped
 * across concurrent turns (src/db/write-batcher.ts): under load, one statement for every turn start that arrived while
 * the previous group was written, instead of one statement and one pooled connection each. Each turn still waits for
 * its own row to be committed, so the message is stored before the model is called, as before.
 *
 * Only writes on the database itself are grouped; inside a transaction the caller's transaction is used, as always.
 */
export function withGroupedWrites(repository: ChatRepository, db: Db): ChatRepository & { drainGroupedWrites(): Promise<void> } {
  const turnStarts: WriteBatcher<TurnStart, boolean> = createWriteBatcher({
    writeOne: (turn) => repository.startTurn(db, turn),
    writeMany: (turns) => repository.startTurns(db, turns),
  });
  const answers: WriteBatcher<{ message: NewMessage; placeholderVault: string | null }, boolean> = createWriteBatcher({
    writeOne: ({ message, placeholderVault }) => repository.insertIntoSession(db, message, placeholderVault),
    writeMany: (items) => repository.insertManyIntoSessions(db, items),
  });
  return {
    ...repository,
    startTurn: (executor: DbOrTx, turn: TurnStart) => (executor === db ? turnStarts.write(turn) : repository.startTurn(executor, turn)),
    insertIntoSession: (executor: DbOrTx, message: NewMessage, placeholderVault: string | null) =>
      executor === db ? answers.write({ message, placeholderVault }) : repository.insertIntoSession(executor, message, placeholderVault),
    async drainGroupedWrites() {
      await Promise.all([turnStarts.drain(), answers.drain()]);
    },
  };
}
