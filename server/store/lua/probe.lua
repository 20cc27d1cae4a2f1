-- ARGV: P. Writes nothing, but is registered without the no-writes flag, so Redis refuses
-- it with OOM exactly when it refuses writes (maxmemory reached with noeviction): the
-- store calls it while Redis is full to learn when writes are accepted again.
return '{}'
