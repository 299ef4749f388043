CREATE TABLE "document_chunks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"document_id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"index" integer NOT NULL,
	"encrypted_content" text NOT NULL,
	"page" integer,
	"char_start" integer NOT NULL,
	"char_end" integer NOT NULL,
	"token_count" integer NOT NULL,
	"search_vector" "tsvector" NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "document_shares" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"document_id" uuid NOT NULL,
	"user_id" uuid,
	"role" text,
	"created_by" uuid NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "document_shares_target_check" CHECK (("document_shares"."user_id" is null) <> ("document_shares"."role" is null)),
	CONSTRAINT "document_shares_role_check" CHECK ("document_shares"."role" is null or "document_shares"."role" in ('ANALYST', 'MANAGER', 'ADMIN'))
);
--> statement-breakpoint
CREATE TABLE "documents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"owner_id" uuid NOT NULL,
	"title" text NOT NULL,
	"filename" text NOT NULL,
	"mime_type" text NOT NULL,
	"size_bytes" bigint NOT NULL,
	"sha256" text NOT NULL,
	"label" text NOT NULL,
	"label_source" text DEFAULT 'user' NOT NULL,
	"detected" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"visibility" text DEFAULT 'private' NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"progress" double precision DEFAULT 0 NOT NULL,
	"error" text,
	"page_count" integer,
	"chunk_count" integer DEFAULT 0 NOT NULL,
	"vector_indexed" boolean DEFAULT false NOT NULL,
	"vector_reason" text,
	"encrypted_content" text NOT NULL,
	"encrypted_text" text,
	"generation" integer DEFAULT 1 NOT NULL,
	"stage_started_at" timestamp (3) with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "documents_label_check" CHECK ("documents"."label" in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED')),
	CONSTRAINT "documents_label_source_check" CHECK ("documents"."label_source" in ('user', 'auto')),
	CONSTRAINT "documents_visibility_check" CHECK ("documents"."visibility" in ('private', 'organization')),
	CONSTRAINT "documents_status_check" CHECK ("documents"."status" in ('queued', 'extracting', 'chunking', 'embedding', 'indexed', 'failed'))
);
--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "clearance" text;--> statement-breakpoint
ALTER TABLE "document_chunks" ADD CONSTRAINT "document_chunks_document_id_documents_id_fk" FOREIGN KEY ("document_id") REFERENCES "public"."documents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "document_shares" ADD CONSTRAINT "document_shares_document_id_documents_id_fk" FOREIGN KEY ("document_id") REFERENCES "public"."documents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "document_shares" ADD CONSTRAINT "document_shares_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "documents" ADD CONSTRAINT "documents_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "document_chunks_position_idx" ON "document_chunks" USING btree ("document_id","generation","index");--> statement-breakpoint
CREATE INDEX "document_chunks_search_idx" ON "document_chunks" USING gin ("search_vector");--> statement-breakpoint
CREATE UNIQUE INDEX "document_shares_user_idx" ON "document_shares" USING btree ("document_id","user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "document_shares_role_idx" ON "document_shares" USING btree ("document_id","role");--> statement-breakpoint
CREATE INDEX "document_shares_user_lookup_idx" ON "document_shares" USING btree ("user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "documents_owner_sha256_idx" ON "documents" USING btree ("owner_id","sha256");--> statement-breakpoint
CREATE INDEX "documents_created_idx" ON "documents" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "documents_status_idx" ON "documents" USING btree ("status");--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_clearance_check" CHECK ("users"."clearance" in ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'));