-- ARGV: P, retain_ms. How long applied events stay in the stream (events_retain_s; every
-- node sets it when it connects, from the same configuration): events_advance reads it.
redis.call('SET', P .. 'events:retain_ms', ARGV[2])
return '{}'
