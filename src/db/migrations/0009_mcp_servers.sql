CREATE TABLE "mcp_servers" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"transport" text NOT NULL,
	"url" text,
	"auth_secret" text,
	"command" text,
	"args" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"is_enabled" boolean DEFAULT true NOT NULL,
	"status" text DEFAULT 'error' NOT NULL,
	"protocol_version" text,
	"tool_count" integer DEFAULT 0 NOT NULL,
	"last_sync_at" timestamp (3) with time zone,
	"error" text,
	"created_by" uuid,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "mcp_servers_transport_check" CHECK ("mcp_servers"."transport" in ('streamable_http', 'stdio')),
	CONSTRAINT "mcp_servers_status_check" CHECK ("mcp_servers"."status" in ('ok', 'error', 'disabled')),
	CONSTRAINT "mcp_servers_endpoint_check" CHECK (("mcp_servers"."transport" = 'streamable_http' and "mcp_servers"."url" is not null and "mcp_servers"."command" is null) or ("mcp_servers"."transport" = 'stdio' and "mcp_servers"."command" is not null and "mcp_servers"."url" is null))
);
--> statement-breakpoint
ALTER TABLE "mcp_servers" ADD CONSTRAINT "mcp_servers_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "mcp_servers_name_idx" ON "mcp_servers" USING btree ("name");