-- The audit trail is append-only, on PGlite and PostgreSQL alike. Idempotent: applied after every migration run.
--
-- No row-level rule lets a DELETE through: anything a rule could look at (a setting, an archive record) can be written
-- with the same rights as the events, so it would only be a second door. The retention procedure (docs/audit.md)
-- switches this trigger off inside its own transaction, which only the tables' owner can do.
--
-- The one UPDATE allowed gives a row written before the chain was keyed its MAC, once: the MAC is worthless without
-- the key, which is never in the database, and no other column may change.
CREATE OR REPLACE FUNCTION cdsa_audit_events_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.mac IS NULL AND NEW.mac IS NOT NULL
     AND (to_jsonb(NEW) - 'mac') = (to_jsonb(OLD) - 'mac') THEN
    RETURN NEW;
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

-- The chain head only moves forward: rewinding it (to hide a truncated tail) or removing it is refused like a
-- DELETE of events. At an unchanged seq only the time may be filled in.
CREATE OR REPLACE FUNCTION cdsa_audit_chain_head_forward_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'INSERT' AND NEW.id = 1 THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.id = OLD.id
     AND (NEW.seq > OLD.seq OR (NEW.seq = OLD.seq AND NEW.hash = OLD.hash)) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_chain_head only moves forward: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_chain_head_forward_only ON audit_chain_head;
CREATE TRIGGER audit_chain_head_forward_only
  BEFORE INSERT OR UPDATE OR DELETE ON audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION cdsa_audit_chain_head_forward_only();

DROP TRIGGER IF EXISTS audit_chain_head_no_truncate ON audit_chain_head;
CREATE TRIGGER audit_chain_head_no_truncate
  BEFORE TRUNCATE ON audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION cdsa_audit_evidence_append_only();

INSERT INTO audit_chain_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT (id) DO NOTHING;
