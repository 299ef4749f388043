-- BM25 keyword search (src/modules/documents/documents.search.ts) reads three things the database keeps here, in the
-- same transaction as every chunk insert and delete, on PGlite and PostgreSQL alike:
--   search_postings      one row per (lexeme, passage): the term frequency, with the passage's length and document
--   search_term_stats    per lexeme, how many passages contain it (the "document frequency" of BM25's IDF)
--   search_corpus_stats  how many passages there are and how many terms they hold (the average length)
-- They are derived from document_chunks.search_vector and term_count by statement-level triggers, so a cascade
-- (a document or its owner deleted) keeps them exact too. Idempotent: applied after every migration run; the first run
-- after the tables appear fills them from the chunks already stored.
--
-- Lock order: every writer takes the single corpus row first, so concurrent indexing transactions queue on it and
-- never deadlock on the term rows.

CREATE OR REPLACE FUNCTION cdsa_search_add_chunks() RETURNS trigger AS $$
BEGIN
  UPDATE search_corpus_stats
     SET chunk_count = chunk_count + s.n, term_count = term_count + s.t
    FROM (SELECT count(*) AS n, coalesce(sum(term_count), 0) AS t FROM new_chunks) s
   WHERE id = 1;
  INSERT INTO search_postings (term, chunk_id, document_id, tf, chunk_terms)
    SELECT v.lexeme, c.id, c.document_id, coalesce(array_length(v.positions, 1), 1), c.term_count
      FROM new_chunks c, unnest(c.search_vector) v;
  INSERT INTO search_term_stats AS st (term, chunk_frequency)
    SELECT v.lexeme, count(*) FROM new_chunks c, unnest(c.search_vector) v GROUP BY v.lexeme ORDER BY v.lexeme
  ON CONFLICT (term) DO UPDATE SET chunk_frequency = st.chunk_frequency + excluded.chunk_frequency;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION cdsa_search_remove_chunks() RETURNS trigger AS $$
BEGIN
  UPDATE search_corpus_stats
     SET chunk_count = greatest(chunk_count - s.n, 0), term_count = greatest(term_count - s.t, 0)
    FROM (SELECT count(*) AS n, coalesce(sum(term_count), 0) AS t FROM old_chunks) s
   WHERE id = 1;
  DELETE FROM search_postings p USING old_chunks c, unnest(c.search_vector) v
   WHERE p.term = v.lexeme AND p.chunk_id = c.id;
  WITH gone AS (
    SELECT v.lexeme AS term, count(*) AS n FROM old_chunks c, unnest(c.search_vector) v GROUP BY v.lexeme ORDER BY v.lexeme
  )
  UPDATE search_term_stats st SET chunk_frequency = st.chunk_frequency - gone.n FROM gone WHERE st.term = gone.term;
  -- A lexeme no passage holds any more is forgotten: a deleted document leaves nothing of its vocabulary behind.
  DELETE FROM search_term_stats
   WHERE chunk_frequency <= 0 AND term IN (SELECT v.lexeme FROM old_chunks c, unnest(c.search_vector) v);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Chunks are not updated in place except to rewrap their ciphertext (key rotation); should the indexed text or length
-- ever change, the statistics follow: the old rows are removed and the new ones added.
CREATE OR REPLACE FUNCTION cdsa_search_update_chunks() RETURNS trigger AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM old_chunks o JOIN new_chunks n ON n.id = o.id
     WHERE n.search_vector IS DISTINCT FROM o.search_vector OR n.term_count IS DISTINCT FROM o.term_count
        OR n.document_id IS DISTINCT FROM o.document_id
  ) THEN
    RAISE EXCEPTION 'document_chunks: the indexed text of a passage is replaced by deleting and inserting it'
      USING ERRCODE = 'feature_not_supported';
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- BM25's length of a passage: its lexeme occurrences (what the postings' term frequencies add up to), taken from the
-- stored vector so the text is analysed once per insert.
CREATE OR REPLACE FUNCTION cdsa_search_chunk_length() RETURNS trigger AS $$
BEGIN
  NEW.term_count := (SELECT coalesce(sum(coalesce(array_length(v.positions, 1), 1)), 0) FROM unnest(NEW.search_vector) v);
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS document_chunks_search_length ON document_chunks;
DROP TRIGGER IF EXISTS document_chunks_search_insert ON document_chunks;
DROP TRIGGER IF EXISTS document_chunks_search_delete ON document_chunks;
DROP TRIGGER IF EXISTS document_chunks_search_update ON document_chunks;

-- First run: the statistics of the passages stored before search existed.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM search_corpus_stats WHERE id = 1) THEN
    UPDATE document_chunks c
       SET term_count = (SELECT coalesce(sum(coalesce(array_length(v.positions, 1), 1)), 0) FROM unnest(c.search_vector) v);
    DELETE FROM search_postings;
    DELETE FROM search_term_stats;
    INSERT INTO search_postings (term, chunk_id, document_id, tf, chunk_terms)
      SELECT v.lexeme, c.id, c.document_id, coalesce(array_length(v.positions, 1), 1), c.term_count
        FROM document_chunks c, unnest(c.search_vector) v;
    INSERT INTO search_term_stats (term, chunk_frequency)
      SELECT term, count(*) FROM search_postings GROUP BY term;
    INSERT INTO search_corpus_stats (id, chunk_count, term_count)
      SELECT 1, count(*), coalesce(sum(term_count), 0) FROM document_chunks;
  END IF;
END;
$$;

CREATE TRIGGER document_chunks_search_length
  BEFORE INSERT ON document_chunks
  FOR EACH ROW EXECUTE FUNCTION cdsa_search_chunk_length();
CREATE TRIGGER document_chunks_search_insert
  AFTER INSERT ON document_chunks REFERENCING NEW TABLE AS new_chunks
  FOR EACH STATEMENT EXECUTE FUNCTION cdsa_search_add_chunks();
CREATE TRIGGER document_chunks_search_delete
  AFTER DELETE ON document_chunks REFERENCING OLD TABLE AS old_chunks
  FOR EACH STATEMENT EXECUTE FUNCTION cdsa_search_remove_chunks();
CREATE TRIGGER document_chunks_search_update
  AFTER UPDATE ON document_chunks REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
  FOR EACH STATEMENT EXECUTE FUNCTION cdsa_search_update_chunks();
