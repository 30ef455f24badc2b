-- Monitoring of a server can be paused by a person (maintenance): set while paused.
ALTER TABLE servers ADD COLUMN paused_at timestamptz;
