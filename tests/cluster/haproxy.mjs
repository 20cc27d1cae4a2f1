// The real HAProxy running docker/haproxy.cfg on loopback, a Balancer like lib.mjs's
// Nginx, so a Cluster can put either in front of its nodes. Only the lines marked "@test" are rewritten (pid file,
// listen address, server addresses, maxconn); a change to those lines that the rewrite no longer
// understands fails the test instead of going untested.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../server/harness.mjs';
import { Balancer } from './lib.mjs';

export const HAPROXY_CFG = path.join(REPO_ROOT, 'docker', 'haproxy.cfg');

export function haproxyBinary() {
    for (const p of [process.env.HAPROXY, '/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy']) {
        if (p && fs.existsSync(p)) return p;
    }
    return null;
}

/** docker/haproxy.cfg with the "@test" lines pointed at loopback. */
export function haproxyCfgFor({ dir, port, upstreams }) {
    const out = [];
    let servers = 0;
    const seen = new Set();
    for (const line of fs.readFileSync(HAPROXY_CFG, 'utf8').split('\n')) {
        if (!line.includes('# @test')) {
            out.push(line);
            continue;
        }
        const indent = line.match(/^\s*/)[0];
        const tag = line.slice(line.indexOf('# @test') + 7).trim().split(/\s+/)[0];
        seen.add(tag);
        let m;
        switch (tag) {
            case 'pid':
                out.push(`${indent}pidfile ${path.join(dir, 'haproxy.pid')}`);
                break;
            case 'maxconn': // the test machine's file-descriptor limit
                out.push(`${indent}maxconn 4096`);
                break;
            case 'bind':
                out.push(`${indent}bind 127.0.0.1:${port}`);
                break;
            case 'server':
                m = /^\s*server\s+(\S+)\s+\S+\s*(.*?)\s*# @test/.exec(line);
                if (!m) throw new Error(`haproxy.cfg: cannot rewrite server line: ${line}`);
                if (servers < upstreams.length) out.push(`${indent}server ${m[1]} 127.0.0.1:${upstreams[servers]} ${m[2]}`);
                servers++;
                break;
            default:
                throw new Error(`haproxy.cfg: unknown @test tag ${tag}`);
        }
    }
    for (const t of ['pid', 'maxconn', 'bind', 'server']) if (!seen.has(t)) throw new Error(`docker/haproxy.cfg has no "@test ${t}" line any more`);
    if (servers < upstreams.length) throw new Error(`docker/haproxy.cfg has ${servers} servers, the test needs ${upstreams.length}`);
    return out.join('\n');
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
