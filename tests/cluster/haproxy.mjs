// The real HAProxy running docker/haproxy.cfg on loopback, a Balancer like lib.mjs's
// Nginx, so a Cluster can put either in front of its nodes. Only the lines marked "@test" are rewritten (pid file,
// listen address, server addresses, maxconn); a change to those lines that the rewrite no longer
// understands fails the test instead of going untested.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../server/harness.mjs';
import { Balancer, rewriteMarked, marked } from './lib.mjs';

export const HAPROXY_CFG = path.join(REPO_ROOT, 'docker', 'haproxy.cfg');

export function haproxyBinary() {
    for (const p of [process.env.HAPROXY, '/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy']) {
        if (p && fs.existsSync(p)) return p;
    }
    return null;
}

/** docker/haproxy.cfg with the "@test" lines pointed at loopback. */
export function haproxyCfgFor({ dir, port, upstreams }) {
    return rewriteMarked(
        HAPROXY_CFG,
        {
            pid: (line, indent) => `${indent}pidfile ${path.join(dir, 'haproxy.pid')}`,
            maxconn: (line, indent) => `${indent}maxconn 4096`, // the test machine's file-descriptor limit
            bind: (line, indent) => `${indent}bind 127.0.0.1:${port}`,
            server: (line, indent, n) => {
                const m = marked(/^\s*server\s+(\S+)\s+\S+\s*(.*?)\s*# @test/, line, 'haproxy.cfg server');
                return n < upstreams.length ? `${indent}server ${m[1]} 127.0.0.1:${upstreams[n]} ${m[2]}` : null;
            },
        },
        { serverTag: 'server', servers: upstreams.length },
    );
}

/** HAProxy running docker/haproxy.cfg, in the foreground (-W master-worker, -db);
 *  SIGTERM to the master stops it (its soft stop, SIGUSR1, would wait for the WebSockets). */
export class Haproxy extends Balancer {
    constructor(dir) {
        super(dir, 'haproxy', 'SIGTERM', 'SIGTERM');
    }

    spawnOn(port, upstreams) {
        const bin = haproxyBinary();
        if (!bin) throw new Error('haproxy not found (apt-get install -y haproxy)');
        const cfg = path.join(this.dir, 'haproxy.cfg');
        fs.writeFileSync(cfg, haproxyCfgFor({ dir: this.dir, port, upstreams }));
        return spawn(bin, ['-W', '-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    }
}
