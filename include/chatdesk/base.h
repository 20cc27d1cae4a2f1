/* base: allocation (abort on OOM: a node may die at any time without loss, so a failed
 * malloc needs no recovery path), byte buffers, a small hash map, ids, the token-bucket
 * rate limiter, error codes. Everything else builds on it; it depends on nothing. */
#ifndef CHATDESK_BASE_H
#define CHATDESK_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors: one table, names are the protocol's error codes ---- */
#define CD_ERR_TABLE(X)             \
    X(OK, "ok")                     \
    X(BAD_REQUEST, "bad_request")   \
    X(UNAUTHORIZED, "unauthorized") \
    X(FORBIDDEN, "forbidden")       \
    X(NOT_FOUND, "not_found")       \
    X(CONFLICT, "conflict")         \
    X(RATE_LIMITED, "rate_limited") \
    X(TOO_LARGE, "too_large")       \
    X(UNAVAILABLE, "unavailable")   \
    X(INTERNAL, "internal")

typedef enum cd_err {
#define CD_ERR_ENUM(name, str) CD_ERR_##name,
    CD_ERR_TABLE(CD_ERR_ENUM)
#undef CD_ERR_ENUM
        CD_ERR__COUNT
} cd_err;

/* "bad_request" etc.; never NULL. */
const char *cd_err_name(cd_err e);
/* Parse a code name back; CD_ERR_INTERNAL for unknown names. */
cd_err cd_err_from_name(const char *name);

/* ---- allocation: abort on out-of-memory, like Redis ---- */
void *cd_malloc(size_t n);
void *cd_calloc(size_t n, size_t size);
void *cd_realloc(void *p, size_t n);
char *cd_strdup(const char *s);
char *cd_strndup(const char *s, size_t n);
void cd_free(void *p);

/* ---- growable byte buffer (always NUL-terminated) ---- */
typedef struct cd_buf {
    char *data;
    size_t len;
    size_t cap;
} cd_buf;

void cd_buf_init(cd_buf *b);
void cd_buf_cleanup(cd_buf *b);
void cd_buf_reset(cd_buf *b);
void cd_buf_reserve(cd_buf *b, size_t extra);
void cd_buf_append(cd_buf *b, const void *p, size_t n);
void cd_buf_append_str(cd_buf *b, const char *s);
void cd_buf_printf(cd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- ids and randomness (getrandom) ---- */
void cd_random_bytes(void *out, size_t n);
/* prefix + "_" + 22 chars of base64url (128 random bits). out must hold 64 bytes. */
void cd_id_new(const char *prefix, char *out, size_t outsz);
/* lowercase hex of n random bytes into out (2n+1 bytes). */
void cd_random_hex(char *out, size_t nbytes);
/* 32-bit FNV-1a of n bytes, continuing from h (start with CD_FNV1A_INIT). */
#define CD_FNV1A_INIT 2166136261u
uint32_t cd_fnv1a(uint32_t h, const void *p, size_t n);

/* ---- token bucket ---- */
typedef struct cd_ratelimit {
    double tokens;
    double rate;  /* tokens per second */
    double burst; /* bucket size */
    uint64_t last_ms;
} cd_ratelimit;

void cd_ratelimit_init(cd_ratelimit *rl, double rate, double burst, uint64_t now_ms);
/* true if a token was taken, false if the caller is over its rate. */
bool cd_ratelimit_take(cd_ratelimit *rl, uint64_t now_ms);
/* true if a token could be taken now (none is). */
bool cd_ratelimit_peek(cd_ratelimit *rl, uint64_t now_ms);

/* ---- misc ---- */
#define CD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CD_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Copy at most dstsz-1 bytes, always terminate; returns strlen(src). */
size_t cd_strlcpy(char *dst, const char *src, size_t dstsz);

/* ---- string-keyed hash map (chained, grows by doubling); values are borrowed pointers ---- */
typedef struct cd_map_entry {
    struct cd_map_entry *next;
    void *value;
    size_t klen;
    uint32_t hash;
    char key[]; /* NUL-terminated */
} cd_map_entry;

typedef struct cd_map {
    cd_map_entry **slots;
    size_t nslots;
    size_t count;
} cd_map;

void cd_map_init(cd_map *m);
void cd_map_cleanup(cd_map *m); /* frees entries, not values */
void *cd_map_get(const cd_map *m, const char *key, size_t klen);
/* Insert or replace; returns the entry (its key is stable until removal). */
cd_map_entry *cd_map_put(cd_map *m, const char *key, size_t klen, void *value);
/* Remove; returns the old value or NULL. */
void *cd_map_del(cd_map *m, const char *key, size_t klen);
/* A count kept as a map value: adds delta (+1 or -1, never below 0), drops the entry at 0;
 * returns the new count. */
size_t cd_map_count(cd_map *m, const char *key, size_t klen, int delta);
/* Iterate: for (cd_map_entry *e = cd_map_first(m, &i); e; e = cd_map_next(m, e, &i)) */
cd_map_entry *cd_map_first(const cd_map *m, size_t *it);
cd_map_entry *cd_map_next(const cd_map *m, cd_map_entry *e, size_t *it);

#endif
