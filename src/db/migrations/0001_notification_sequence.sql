CREATE TABLE "notification_sequence" (
	"id" smallint PRIMARY KEY NOT NULL,
	"last_seq" bigint NOT NULL,
	CONSTRAINT "notification_sequence_single_row" CHECK ("notification_sequence"."id" = 1)
);
--> statement-breakpoint
ALTER TABLE "notifications" DROP CONSTRAINT "notifications_user_id_users_id_fk";
--> statement-breakpoint
DROP INDEX "notifications_unread_idx";
--> statement-breakpoint
-- Seqs become global: start above every seq already handed out, so each user's seqs keep increasing.
INSERT INTO "notification_sequence" ("id", "last_seq") SELECT 1, COALESCE(MAX("seq"), 0) FROM "notifications";
