// F12 (RELIABILITY.md), nightly, behind the shipped haproxy.cfg: the scenario of
// 10-f12-sigstop (tests/nightly/f12.mjs), where HAProxy's health checks (/healthz each
// second, out after two failures, its WebSockets shut) take the paused node out, so its
// clients reconnect to the live nodes and are acknowledged there within their heartbeat
// + 5 s; when it is continued, it passes its checks again and takes new connections.
import { Haproxy, haproxyBinary } from '../cluster/haproxy.mjs';
import { f12Suite } from './f12.mjs';

f12Suite({
    name: 'haproxy',
    lb: (dir) => new Haproxy(dir),
    skip: haproxyBinary() ? false : 'haproxy is not installed (apt-get install -y haproxy)',
});
