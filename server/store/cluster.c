/* Redis Cluster's pure parts, for the store's redis+cluster:// mode: which slot a key
 * lives in (CRC16 of its hash tag, as the Cluster specification defines it), the slot
 * map read from CLUSTER SLOTS, and the MOVED / ASK redirections. No I/O here: store.c
 * owns the connections, so these can be tested without a server. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the checksum Redis Cluster hashes
 * keys with; computed bit by bit (keys are short, and this runs once per call). */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int cd_cluster_slot(const char *key, size_t len)
{
    /* the hash tag: between the first '{' and the next '}', when not empty */
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (CD_CLUSTER_SLOTS - 1);
    }
    return crc16(key, len) & (CD_CLUSTER_SLOTS - 1);
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" */
int cd_cluster_redirect(const char *err, cd_cluster_redir *out)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncmp(err, "MOVED ", 6) == 0) {
        out->ask = false;
        p = err + 6;
    } else if (strncmp(err, "ASK ", 4) == 0) {
        out->ask = true;
        p = err + 4;
    } else {
        return -1;
    }
    char *end;
    long slot = strtol(p, &end, 10);
    if (end == p || *end != ' ' || slot < 0 || slot >= CD_CLUSTER_SLOTS)
        return -1;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof out->host)
        return -1;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port <= 0 || port > 65535)
        return -1;
    out->slot = (int)slot;
    memcpy(out->host, addr, (size_t)(colon - addr));
    out->host[colon - addr] = '\0';
    out->port = (int)port;
    return 0;
}

/* CLUSTER SLOTS: [[start, end, [host, port, id…], replicas…], …]. Calls add(host, port)
 * for each range's primary and fills slots[start..end] with what it returns. Returns the
 * number of slots covered (CD_CLUSTER_SLOTS when the map is whole), -1 on a malformed
 * reply. */
int cd_cluster_parse_slots(const redisReply *r, uint16_t *slots, int (*add)(void *ud, const char *host, int port),
                           void *ud)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (int i = 0; i < CD_CLUSTER_SLOTS; i++)
        slots[i] = CD_CLUSTER_NO_NODE;
    int covered = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 || e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi >= CD_CLUSTER_SLOTS || lo > hi)
            return -1;
        const char *host = e->element[2]->element[0]->str;
        int idx = add(ud, host, (int)e->element[2]->element[1]->integer);
        if (idx < 0)
            return -1;
        for (long long s = lo; s <= hi; s++) {
            if (slots[s] == CD_CLUSTER_NO_NODE)
                covered++;
            slots[s] = (uint16_t)idx;
        }
    }
    return covered;
}

/* The site a bus channel belongs to: site:<site>, or conv:<cid> of an id that ends in
 * ".<site>" (cid_site in _common.lua: the last '.' followed by [A-Za-z0-9_-]+). */
static size_t channel_site(const char *ch, size_t n, const char **site)
{
    if (n > 5 && memcmp(ch, "site:", 5) == 0) {
        *site = ch + 5;
        return n - 5;
    }
    if (n <= 5 || memcmp(ch, "conv:", 5) != 0)
        return 0;
    size_t i = n;
    while (i > 5 && (isalnum((unsigned char)ch[i - 1]) || ch[i - 1] == '_' || ch[i - 1] == '-'))
        i--;
    if (i == n || ch[i - 1] != '.')
        return 0;
    *site = ch + i;
    return n - i;
}

size_t cd_store_shard_channel(const char *prefix, const char *ch, size_t n, char *out, size_t cap)
{
    const char *site = NULL;
    size_t sl = channel_site(ch, n, &site);
    if (!sl)
        return 0;
    int len = snprintf(out, cap, "%s{s:%.*s}:ch:%.*s", prefix, (int)sl, site, (int)n, ch);
    return len > 0 && (size_t)len < cap ? (size_t)len : 0;
}
