/* Every chatdeskd setting, declared once: X(name, TYPE, default, min, max, doc).
 * TYPE is INT (int64, bounds min..max), STR (min/max unused) or BOOL.
 * The config file key is <name>; the environment variable is CHATDESK_<NAME>;
 * the flag is --<name with '_' as '-'>. --help and docs/config.md are generated from this. */
#define CD_CONFIG_TABLE(X)                                                                                            \
    X(port, INT, 8080, 0, 65535, "HTTP/WebSocket port; 0 picks a free port and prints it")                            \
    X(bind, STR, "127.0.0.1", 0, 0, "address to listen on (0.0.0.0 for all interfaces)")                              \
    X(tls_cert, STR, "", 0, 0,                                                                                        \
      "PEM certificate (chain) file: the port serves HTTPS and WSS only (TLS 1.2+, with tls_key); empty: plain HTTP") \
    X(tls_key, STR, "", 0, 0, "PEM private key file of tls_cert")                                                     \
    X(redis, STR, "redis://127.0.0.1:6379/0", 0, 0,                                                                   \
      "Redis URL: redis://[:password@]host:port/db, unix:/path[?db=N] or redis+sentinel://h:p[,h:p...]/master[/db]")  \
    X(redis_password, STR, "", 0, 0, "Redis AUTH password (prefer the environment variable)")                         \
    X(redis_user, STR, "", 0, 0,                                                                                      \
      "Redis ACL user (docs/ops.md, Redis ACL): every connection sends AUTH user password; needs a password")         \
    X(ack_replicas, INT, 0, 0, 16,                                                                                    \
      "a message is acknowledged only once this many replicas have it (WAIT); 0: the primary")                        \
    X(ack_replicas_timeout_ms, INT, 1000, 10, 60000,                                                                  \
      "wait this long for ack_replicas, then answer unavailable (retryable)")                                         \
    X(prefix, STR, "cd:", 0, 0, "prefix of every Redis key and channel")                                              \
    X(node_id, STR, "", 0, 0, "node id reported in /healthz and presence; default: hostname-pid")                     \
    X(log_level, STR, "info", 0, 0, "debug, info, warn or error")                                                     \
    X(static_dir, STR, "", 0, 0, "directory with widget.js, demo/ and app/; default: <exe dir>/../web or ./web")      \
    X(agent_origins, STR, "", 0, 0,                                                                                   \
      "Origins allowed on /ws/agent: a comma list, * for any; empty: the node's own (http(s):// + Host)")             \
    X(token_secret, STR, "", 0, 0, "64 hex chars: token signing key; empty: a shared key kept in Redis")              \
    X(secrets_key_file, STR, "", 0, 0,                                                                                \
      "file of 64 hex chars, the same on every node: seals the two-factor secrets kept in Redis; empty: unsealed")    \
    X(max_frame, INT, 65536, 1024, 16777216, "largest WebSocket message in bytes (close 1009 above)")                 \
    X(max_body, INT, 8192, 1, 1048576, "largest message body in bytes after trimming (too_large above)")              \
    X(max_json_depth, INT, 8, 2, 64, "deepest JSON nesting accepted in a frame")                                      \
    X(max_rid, INT, 64, 1, 1024, "longest request id (rid) in bytes")                                                 \
    X(max_id, INT, 64, 8, 1024, "longest id (client_msg_id, conversation id, site key) in bytes")                     \
    X(max_field, INT, 1024, 16, 65536, "longest form field, name, subject, comment or note in bytes")                 \
    X(history_page_max, INT, 100, 1, 1000, "most messages one history request returns")                               \
    X(history_retain, INT, 10000, 0, 100000000, "messages kept per conversation (older ones trimmed); 0 keeps all")   \
    X(resume_max, INT, 1000, 1, 100000, "most messages one resume replays; beyond it recovered:false")                \
    X(hello_timeout_ms, INT, 10000, 100, 600000, "time to send hello after connecting (close 4408)")                  \
    X(ping_interval_s, INT, 30, 1, 3600, "WebSocket ping after this many idle seconds")                               \
    X(idle_timeout_s, INT, 75, 2, 7200, "close a connection with no valid pong/frame for this many seconds")          \
    X(visitor_rate, INT, 10, 1, 100000, "frames per second a visitor connection may send (token bucket)")             \
    X(visitor_burst, INT, 20, 1, 100000, "visitor token bucket size")                                                 \
    X(agent_rate, INT, 20, 1, 100000, "frames per second an agent connection may send")                               \
    X(agent_burst, INT, 40, 1, 100000, "agent token bucket size")                                                     \
    X(rate_strikes, INT, 10, 1, 1000000, "rate_limited errors in a row before close 4429")                            \
    X(outq_max_frames, INT, 512, 8, 1000000, "outbound queue frames per connection before close 4008")                \
    X(outq_max_bytes, INT, 1048576, 65536, 1073741824, "outbound queue bytes per connection before close 4008")       \
    X(slow_reader_s, INT, 15, 0, 3600,                                                                                \
      "close 4008 a connection that is sent frames but leaves a delivery ping unanswered this long; 0: off")          \
    X(max_conns_per_ip, INT, 200, 1, 1000000, "concurrent WebSocket connections per client IP")                       \
    X(conn_rate_per_ip, INT, 20, 1, 1000000,                                                                          \
      "new WebSocket connections per second per client address (token bucket; each carries at most one hello)")       \
    X(conn_burst_per_ip, INT, 100, 1, 1000000, "token bucket size of conn_rate_per_ip")                               \
    X(header_timeout_s, INT, 5, 1, 120,                                                                               \
      "seconds a connection has to send its request head (request line and headers); then 408 and closed")            \
    X(max_header_bytes, INT, 8192, 1024, 32768,                                                                       \
      "largest HTTP request head (request line and headers) in bytes; 431 above")                                     \
    X(max_pending_per_ip, INT, 200, 1, 1000000,                                                                       \
      "connections per client address still sending their request head; more are answered 429 at once")               \
    X(http_header_slots, INT, 1024, 16, 32767,                                                                        \
      "requests whose headers the node holds at once (all addresses together)")                                       \
    X(trusted_proxies, STR, "", 0, 0, "comma list of load balancer addresses whose X-Forwarded-For names the client") \
    X(public_api_rate, INT, 10, 1, 100000, "public API (knowledge base) requests per second per client address")      \
    X(public_api_burst, INT, 30, 1, 100000, "public API token bucket size per client address")                        \
    X(api_token_rate_per_min, INT, 600, 1, 1000000,                                                                   \
      "calls per minute one API token may make (all nodes together; counted in Redis, per minute window)")            \
    X(login_fail_max, INT, 5, 1, 1000,                                                                                \
      "failed logins per account within login_fail_window_s before 429 (Retry-After)")                                \
    X(login_fail_window_s, INT, 900, 10, 86400,                                                                       \
      "window of login_fail_max, counted from the first failure, in seconds")                                         \
    X(login_rate_per_ip, INT, 20, 1, 1000000, "login attempts per minute per client address (token bucket per node)") \
    X(audit_retain_days, INT, 90, 1, 3650,                                                                            \
      "audit log retention in days: a site's default (its admins may set their own) and the account log's")           \
    X(hash_queue_max, INT, 32, 1, 100000, "password hashes queued or running per node; beyond: 503 with Retry-After") \
    X(visitor_token_ttl_s, INT, 2592000, 60, 315360000, "lifetime of a visitor token (renewed at every hello)")       \
    X(agent_token_ttl_s, INT, 43200, 60, 31536000, "lifetime of an agent login token")                                \
    X(redis_connect_timeout_ms, INT, 2000, 100, 60000, "Redis connect timeout")                                       \
    X(redis_ping_interval_ms, INT, 1000, 100, 60000, "Redis PING interval on each connection")                        \
    X(redis_ping_timeout_ms, INT, 3000, 100, 60000, "Redis is down when a PING or command waits this long")           \
    X(redis_backoff_min_ms, INT, 100, 10, 60000, "first Redis reconnect delay (doubles, with full jitter)")           \
    X(redis_backoff_max_ms, INT, 1000, 100, 600000, "largest Redis reconnect delay")                                  \
    X(redis_down_close_ms, INT, 0, 0, 3600000,                                                                        \
      "once this node has found Redis unreachable for this long, close its connections (1013) and refuse upgrades "   \
      "(503) until Redis is back, so clients reconnect through a node that has Redis; 0: keep them open")             \
    X(site_cache_refresh_s, INT, 30, 1, 3600, "reload site origins from Redis at least this often")                   \
    X(presence_ttl_s, INT, 25, 2, 3600, "an agent no node has vouched for this long is offline")                      \
    X(presence_beat_s, INT, 8, 1, 3600, "how often a node vouches for its connected agents")                          \
    X(viewer_ttl_ms, INT, 30000, 1000, 600000,                                                                        \
      "an agent viewing a conversation that no node has refreshed for this long is no longer shown (the dashboard "   \
      "refreshes every third of it)")                                                                                 \
    X(timer_poll_ms, INT, 500, 50, 60000, "how often a node claims due timers (SLA, auto-close)")                     \
    X(event_poll_ms, INT, 250, 20, 60000,                                                                             \
      "how long a site's new events gather before a node runs its event consumers (reports, rules, webhooks, "        \
      "health); also how often webhook deliveries are claimed")                                                       \
    X(events_retain_s, INT, 0, 0, 604800,                                                                             \
      "seconds an event stays in the stream after every consumer applied it (to inspect); 0: trimmed at once")        \
    X(timer_lease_ms, INT, 30000, 1000, 3600000, "a claimed timer whose node died is claimed again after this")       \
    X(drain_timeout_s, INT, 8, 0, 600, "on SIGTERM: seconds /healthz says draining before the node exits")            \
    X(max_http_body, INT, 65536, 1024, 16777216, "largest HTTP request body in bytes")                                \
    X(files_dir, STR, "./var/files", 0, 0,                                                                            \
      "directory of attachment bodies (docs/attachments.md); every node must see the same one (a shared volume)")     \
    X(files_store, STR, "local", 0, 0,                                                                                \
      "where attachment bodies live: local (files_dir) or s3 (an S3-compatible store; files_dir stages uploads)")     \
    X(s3_endpoint, STR, "", 0, 0,                                                                                     \
      "S3 endpoint URL (http(s)://host[:port]); empty: https://s3.<s3_region>.amazonaws.com")                         \
    X(s3_region, STR, "us-east-1", 0, 0, "S3 region (SigV4 signing)")                                                 \
    X(s3_bucket, STR, "", 0, 0, "S3 bucket of attachment bodies (objects <site>/<id>)")                               \
    X(s3_access_key, STR, "", 0, 0, "S3 access key id (prefer the environment variable)")                             \
    X(s3_secret_key, STR, "", 0, 0, "S3 secret access key (prefer the environment variable)")                         \
    X(s3_path_style, BOOL, 0, 0, 1,                                                                                   \
      "address objects as <endpoint>/<bucket>/<key> (MinIO, s3rver) instead of <bucket>.<host>")                      \
    X(file_max_bytes, INT, 10485760, 1, 2147483647, "largest attachment in bytes (too_large above)")                  \
    X(file_max_per_message, INT, 5, 1, 50, "most attachments one message carries")                                    \
    X(file_types, STR, "image,pdf,office,text,archive", 0, 0,                                                         \
      "attachment categories allowed (judged by the file's bytes): image, pdf, office, text, archive")                \
    X(file_url_ttl_s, INT, 300, 10, 86400, "lifetime of a signed attachment download link in seconds")                \
    X(file_orphan_s, INT, 86400, 1, 2592000, "an upload no message took is removed after this many seconds")          \
    X(file_max_pending, INT, 20, 1, 10000,                                                                            \
      "uploads of one visitor or agent in a site not yet in a message; more are refused (429)")                       \
    X(file_upload_rate, INT, 2, 1, 100000, "uploads per second one address may start (token bucket)")                 \
    X(file_upload_burst, INT, 10, 1, 100000, "upload token bucket size per address")                                  \
    X(reuseport, BOOL, 0, 0, 1, "set SO_REUSEPORT so several nodes on one host share the port")                       \
    X(webhook_allow_hosts, STR, "", 0, 0,                                                                             \
      "comma-separated webhook hosts (host or host:port) allowed to resolve to loopback/private/link-local")          \
    X(webhook_retry_base_ms, INT, 10000, 50, 3600000, "first webhook retry delay (then x3, x12, x60, x360)")          \
    X(webhook_max_attempts, INT, 8, 1, 50, "webhook delivery attempts before it is marked failed")                    \
    X(webhook_timeout_ms, INT, 10000, 1000, 120000, "whole webhook request timeout (connect: at most 5 s)")           \
    X(webhook_concurrency, INT, 16, 1, 1000, "webhook requests in flight per node")                                   \
    X(smtp_url, STR, "", 0, 0,                                                                                        \
      "SMTP server of outgoing mail: smtps://host[:465] (TLS) or smtp://host[:587] (STARTTLS when offered); "         \
      "empty: no mail is queued")                                                                                     \
    X(smtp_user, STR, "", 0, 0, "SMTP AUTH user name (empty: no AUTH)")                                               \
    X(smtp_password, STR, "", 0, 0, "SMTP AUTH password (prefer the environment variable)")                           \
    X(smtp_require_tls, BOOL, 0, 0, 1, "refuse to send over smtp:// unless the server takes STARTTLS")                \
    X(smtp_timeout_ms, INT, 30000, 1000, 600000, "whole SMTP transaction timeout (connect: at most 10 s)")            \
    X(mail_from, STR, "", 0, 0,                                                                                       \
      "default From address of a site's mail (a site's own mail_from wins); its domain names the Message-IDs")        \
    X(mail_reply_to, STR, "", 0, 0,                                                                                   \
      "default reply address (local@domain): mail goes out with Reply-To local+<token>@domain (empty: mail_from)")    \
    X(mail_unread_delay_s, INT, 60, 0, 86400,                                                                         \
      "an agent's reply goes by e-mail when the customer has not read it in the widget this long after it was sent")  \
    X(mail_history, INT, 5, 0, 50, "earlier messages of the conversation quoted under an agent's reply by e-mail")    \
    X(mail_retry_base_ms, INT, 30000, 50, 3600000, "first mail retry delay (then x2 each attempt, at most 1 h)")      \
    X(mail_max_attempts, INT, 8, 1, 50, "sending attempts of a mail before it is marked failed")                      \
    X(mail_max_bytes, INT, 10485760, 1024, 104857600, "largest inbound mail (chatdeskd mail-in) in bytes")
