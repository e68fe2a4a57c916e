-- Keyspace courier_seq (unsharded): the sequence that hands out group_streams.stream_no.
-- next_id: one past the highest stream_no of the database being moved in (1 for a new one).
CREATE TABLE group_streams_seq (
  id INT NOT NULL,
  next_id BIGINT,
  cache BIGINT,
  PRIMARY KEY (id)
) COMMENT 'vitess_sequence';
INSERT INTO group_streams_seq (id, next_id, cache) VALUES (0, 1, 100);
