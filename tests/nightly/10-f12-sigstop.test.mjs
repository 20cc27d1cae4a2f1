// F12 (RELIABILITY.md), nightly, behind the shipped nginx.conf: one of three nodes is paused
// (SIGSTOP) for 40 s (CD_F12_PAUSE_S) during 30 chats, then continued (SIGCONT); the
// scenario is tests/nightly/f12.mjs. Pass: the other nodes keep serving (their clients
// acknowledged all along); presence converges within 45 s (each agent online if its
// client is connected to a live node, else offline); after SIGCONT the node is healthy
// and serves a new chat within 5 s; in the end 0 acked lost, 0 stored twice, no gap or
// duplicate on the wire, everyone has everything. Known limit of nginx (a todo test): the
// paused node's clients cannot move during the pause, because open-source nginx has no
// active health check and least_conn keeps sending their reconnects to the frozen node,
// whose kernel still accepts them. 11-f12-haproxy runs the same scenario behind the
// shipped haproxy.cfg, whose health checks take the node out (docs/ops.md).
import { nginxBinary } from '../cluster/lib.mjs';
import { f12Suite } from './f12.mjs';

f12Suite({
    name: 'nginx',
    skip: nginxBinary() ? false : 'nginx is not installed (apt-get install -y nginx)',
    movedTodo: 'open-source nginx keeps routing reconnects to the frozen node (no active health check, least_conn): use docker/haproxy.cfg',
});
