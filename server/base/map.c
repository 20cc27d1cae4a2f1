/* cd_map: chained hash map with string keys (FNV-1a), doubling at load 1. */
#include <string.h>

#include "chatdesk/base.h"

uint32_t cd_fnv1a(uint32_t h, const void *p, size_t n)
{
    const unsigned char *k = p;
    for (size_t i = 0; i < n; i++) {
        h ^= k[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t fnv1a(const char *k, size_t n)
{
    return cd_fnv1a(CD_FNV1A_INIT, k, n);
}

void cd_map_init(cd_map *m)
{
    m->slots = NULL;
    m->nslots = 0;
    m->count = 0;
}

void cd_map_cleanup(cd_map *m)
{
    for (size_t i = 0; i < m->nslots; i++) {
        cd_map_entry *e = m->slots[i];
        while (e) {
            cd_map_entry *n = e->next;
            cd_free(e);
            e = n;
        }
    }
    cd_free(m->slots);
    cd_map_init(m);
}

static cd_map_entry **find(const cd_map *m, const char *key, size_t klen, uint32_t h)
{
    if (!m->nslots)
        return NULL;
    cd_map_entry **pp = &m->slots[h & (m->nslots - 1)];
    while (*pp) {
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
        pp = &(*pp)->next;
    }
    return pp;
}

void *cd_map_get(const cd_map *m, const char *key, size_t klen)
{
    cd_map_entry **pp = find(m, key, klen, fnv1a(key, klen));
    return pp && *pp ? (*pp)->value : NULL;
}

static void grow(cd_map *m)
{
    size_t n = m->nslots ? m->nslots * 2 : 16;
    cd_map_entry **slots = cd_calloc(n, sizeof *slots);
    for (size_t i = 0; i < m->nslots; i++) {
        cd_map_entry *e = m->slots[i];
        while (e) {
            cd_map_entry *next = e->next;
            e->next = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    cd_free(m->slots);
    m->slots = slots;
    m->nslots = n;
}

cd_map_entry *cd_map_put(cd_map *m, const char *key, size_t klen, void *value)
{
    uint32_t h = fnv1a(key, klen);
    cd_map_entry **pp = find(m, key, klen, h);
    if (pp && *pp) {
        (*pp)->value = value;
        return *pp;
    }
    if (m->count + 1 > m->nslots)
        grow(m);
    cd_map_entry *e = cd_malloc(sizeof *e + klen + 1);
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    e->klen = klen;
    e->hash = h;
    e->value = value;
    e->next = m->slots[h & (m->nslots - 1)];
    m->slots[h & (m->nslots - 1)] = e;
    m->count++;
    return e;
}

void *cd_map_del(cd_map *m, const char *key, size_t klen)
{
    cd_map_entry **pp = find(m, key, klen, fnv1a(key, klen));
    if (!pp || !*pp)
        return NULL;
    cd_map_entry *e = *pp;
    void *v = e->value;
    *pp = e->next;
    cd_free(e);
    m->count--;
    return v;
}

size_t cd_map_count(cd_map *m, const char *key, size_t klen, int delta)
{
    size_t n = (size_t)(uintptr_t)cd_map_get(m, key, klen);
    n = delta > 0 ? n + 1 : (n ? n - 1 : 0);
    if (n)
        cd_map_put(m, key, klen, (void *)(uintptr_t)n);
    else
        cd_map_del(m, key, klen);
    return n;
}

cd_map_entry *cd_map_first(const cd_map *m, size_t *it)
{
    for (*it = 0; *it < m->nslots; (*it)++)
        if (m->slots[*it])
            return m->slots[*it];
    return NULL;
}

cd_map_entry *cd_map_next(const cd_map *m, cd_map_entry *e, size_t *it)
{
    if (e->next)
        return e->next;
    for ((*it)++; *it < m->nslots; (*it)++)
        if (m->slots[*it])
            return m->slots[*it];
    return NULL;
}
