-- Appends one event: $1 name, $2 version, $3 producer, $4 aggregate id,
-- $5 payload.
:event_insert
VALUES ($1, $2, $3, $4, $5) RETURNING id
