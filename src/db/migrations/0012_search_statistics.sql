CREATE TABLE "search_corpus_stats" (
	"id" integer PRIMARY KEY NOT NULL,
	"chunk_count" bigint DEFAULT 0 NOT NULL,
	"term_count" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "search_corpus_stats_single_row" CHECK ("search_corpus_stats"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "search_postings" (
	"term" text NOT NULL,
	"chunk_id" uuid NOT NULL,
	"document_id" uuid NOT NULL,
	"tf" integer NOT NULL,
	"chunk_terms" integer NOT NULL,
	CONSTRAINT "search_postings_term_chunk_id_pk" PRIMARY KEY("term","chunk_id")
);
--> statement-breakpoint
CREATE TABLE "search_term_stats" (
	"term" text PRIMARY KEY NOT NULL,
	"chunk_frequency" integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE "document_chunks" ADD COLUMN "term_count" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "documents" ADD COLUMN "vector_model" text;--> statement-breakpoint
CREATE INDEX "audit_events_resource_idx" ON "audit_events" USING btree ("resource_type","resource_id","seq");--> statement-breakpoint
CREATE INDEX "audit_events_document_ids_idx" ON "audit_events" USING gin (("details" -> 'document_ids')) WHERE "audit_events"."details" ? 'document_ids';