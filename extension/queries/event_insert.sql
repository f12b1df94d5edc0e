-- The head of every insert into the outbox: the columns a writer gives,
-- the others (ids, time, transaction) taking their defaults.
INSERT INTO popug.event (event_name, event_version, producer, aggregate_id, payload)
