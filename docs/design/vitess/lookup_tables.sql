-- The lookup vindexes' tables (docs/design/mysql-sharding.md, 5), in keyspace courier,
-- sharded by their first column. `vtctldclient LookupVindex create` makes and fills them
-- from the owner tables instead; this is what it makes.
CREATE TABLE messages_id_lookup (
  id CHAR(36) NOT NULL,
  keyspace_id VARBINARY(128),
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE group_members_user_lookup (
  user_id CHAR(36) NOT NULL,
  keyspace_id VARBINARY(128) NOT NULL,  -- a group's (the hash of its id): one row per membership
  PRIMARY KEY (user_id, keyspace_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
