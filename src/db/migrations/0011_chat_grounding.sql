ALTER TABLE "chat_messages" ADD COLUMN "label" text;--> statement-breakpoint
ALTER TABLE "chat_messages" ADD COLUMN "routed_to" text;--> statement-breakpoint
ALTER TABLE "chat_messages" ADD COLUMN "citations" text;--> statement-breakpoint
ALTER TABLE "chat_sessions" ADD COLUMN "label" text DEFAULT 'PUBLIC' NOT NULL;--> statement-breakpoint
ALTER TABLE "chat_sessions" ADD COLUMN "pinned_document_ids" uuid[] DEFAULT '{}'::uuid[] NOT NULL;--> statement-breakpoint
ALTER TABLE "chat_messages" ADD CONSTRAINT "chat_messages_label_check" CHECK ("chat_messages"."label" is null or "chat_messages"."label" in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'));--> statement-breakpoint
ALTER TABLE "chat_sessions" ADD CONSTRAINT "chat_sessions_label_check" CHECK ("chat_sessions"."label" in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'));