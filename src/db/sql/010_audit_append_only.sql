-- The audit trail is append-only, on PGlite and PostgreSQL alike. Idempotent: applied after every migration run.
--
-- The one deletion allowed is the retention procedure's (docs/audit.md): inside its transaction it sets
-- cdsa.audit_archive_through and deletes a prefix of the chain that is already recorded in audit_archives (whose
-- boundary is signed with the checkpoint key, so a forged archive record is detected by verification).
CREATE OR REPLACE FUNCTION cdsa_audit_events_append_only() RETURNS trigger AS $$
DECLARE
  archive_through bigint;
BEGIN
  IF TG_OP = 'DELETE' THEN
    archive_through := nullif(current_setting('cdsa.audit_archive_through', true), '')::bigint;
    IF archive_through IS NOT NULL AND OLD.seq <= archive_through
       AND EXISTS (SELECT 1 FROM audit_archives a WHERE a.from_seq <= OLD.seq AND a.to_seq >= OLD.seq) THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_events_no_update_delete ON audit_events;
CREATE TRIGGER audit_events_no_update_delete
  BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION cdsa_audit_events_append_only();

DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events;
CREATE TRIGGER audit_events_no_truncate
  BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION cdsa_audit_events_append_only();

-- Checkpoints and archive records are evidence too: never changed, never removed.
CREATE OR REPLACE FUNCTION cdsa_audit_evidence_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only
  BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION cdsa_audit_evidence_append_only();

DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_truncate
  BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION cdsa_audit_evidence_append_only();

DROP TRIGGER IF EXISTS audit_archives_append_only ON audit_archives;
CREATE TRIGGER audit_archives_append_only
  BEFORE UPDATE OR DELETE ON audit_archives
  FOR EACH ROW EXECUTE FUNCTION cdsa_audit_evidence_append_only();

DROP TRIGGER IF EXISTS audit_archives_no_truncate ON audit_archives;
CREATE TRIGGER audit_archives_no_truncate
  BEFORE TRUNCATE ON audit_archives
  FOR EACH STATEMENT EXECUTE FUNCTION cdsa_audit_evidence_append_only();

INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;
