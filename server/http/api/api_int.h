/* http-internal: the HTTP API under /api/v1/ (docs/api.md). The router (api.c) matches a
 * method and path against the route tables of the resource families (one file each:
 * conversations.c, directory.c (sites, agents), kb.c, rules.c, webhooks.c, reports.c, tokens.c), turns query, body
 * and bound path segments into one JSON params object and runs the family's Redis
 * function (store/lua/api*.lua) with the caller's declared keys. A family may check or
 * complete the params before the call (prepare, complete) and rewrite its reply (reply). http.c
 * does the HTTP side (token, password hashing, webhook address checks, the response). */
#ifndef CHATDESK_HTTP_API_INT_H
#define CHATDESK_HTTP_API_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/auth.h"
#include "chatdesk/config.h"
#include "chatdesk/store.h"

typedef struct cd_api_call {
    const char *method;      /* "GET", "POST", "PATCH", "PUT", "DELETE" */
    const char *path;        /* "/api/v1/tickets/1042" */
    const char *const *args; /* query fragments "k=v" (URL-decoded) */
    size_t nargs;
    const char *body; /* raw JSON body or NULL */
    size_t body_len;
    const char *agent_id; /* from a verified login token */
    const char *pw_hash;  /* Argon2id of the body's "password", when it had one */
    /* the login token's epoch, jti and expiry (ms): api.lua refuses a revoked token */
    int64_t token_epoch;
    const char *jti;
    int64_t token_exp;
    const char *addr; /* the client's address (net/peer.c): the audit log's "from where" */
    /* a site's business-hours intervals (the node's calendar; "*" or "" = always open),
     * passed to each site call for the SLA clocks a change re-aligns (ticket_patch) */
    const char *(*intervals)(void *ctx, const char *site);
    void *intervals_ctx;
    /* an API token's site, id and secret hash (agent_id is then the token's id), or NULL
     * for a login token: its check runs in the token's site (tokens.c) */
    const cd_auth_api_token *api_token;
} cd_api_call;

/* status: the HTTP status; json: the response body (NUL-terminated; may be "null" for 204).
 * ctype: the body's content type when it is not JSON (reports as CSV: "text/csv; …"), else NULL. */
typedef void (*cd_api_cb)(void *ud, int status, const char *json, size_t len, const char *ctype);

/* Where a route's call runs (docs/keyspace.md "Calls over several slots"): CD_API_CALLER in the
 * caller's own slot {a}, one call that also checks the token; otherwise the token check
 * (op "auth", in {a}) first and then calls in site slots: CD_API_SITE one call in the
 * site the params name (site_key, site; else the caller's first site), CD_API_SITES one
 * call per site of the caller (or the site asked for) merged by their rows' keys (numbers
 * highest first, texts in byte order), CD_API_SITES_ORDER the same in the caller's order of sites, and
 * CD_API_FIRST the caller's sites in turn until one has it (a 404 asks the next);
 * CD_API_GATHER asks each site of the caller (or the one asked for) for its facts and
 * then runs the operation in {a} with them, CD_API_GATHER_ONE the same with one site
 * (as CD_API_SITE chooses it); such a reply may name steps in sites ("then") that the
 * node runs before it answers; CD_API_NEW_SITE (POST admin/sites) is three steps, each
 * in its slot: the sites set ({g}), the site's record, the caller's record ({a}). */
enum {
    CD_API_CALLER = 0,
    CD_API_SITE = 'S',
    CD_API_SITES = 'M',
    CD_API_SITES_ORDER = 'O',
    CD_API_FIRST = 'F',
    CD_API_GATHER = 'G',
    CD_API_GATHER_ONE = 'g',
    CD_API_NEW_SITE = 'N',
};

/* An API call's arguments (ARGV from 2; _api.lua reads them): op, agent id, params, now,
 * fresh id, retain, token epoch, jti, expiry, mode ("" in the caller's slot, "as" in a
 * site's, "after" for a gathered operation in {a}; the admin CLI's "operator"), client
 * address, audit days: CD_API_NARGS. A site call adds the caller's record (a gathered
 * operation there: the sites' facts), "part" or "", and the site's intervals. */
enum {
    CD_API_ARG_MODE = 9,
    CD_API_NARGS = 12,
    CD_API_ARG_CALLER = 12,
    CD_API_ARG_PART = 13,
    CD_API_ARG_IV = 14,
    CD_API_NARGS_SITE = 15,
};

/* One route: method, pattern of the segments after /api/v1/ (":" binds a parameter,
 * named by params in order), whether it reads a JSON body, and its function library
 * script (store/lua/<script>.lua; a GET runs its read-only twin <script>_ro); slot:
 * where it runs (0: the family's slot). */
typedef struct cd_api_route {
    const char *method;
    const char *pattern;
    const char *op;
    const char *params[2];
    bool body;
    char slot;
} cd_api_route;

/* One call in flight. The fields after "family" are for the families' hooks. */
typedef struct cd_api_op {
    cd_api_cb cb;
    void *ud;
    const struct cd_api_family *family;
    char op[32];
    cd_store *st;
    cd_key key;     /* the key the call declares: the caller's agent record, or the site's */
    cd_key revoked; /* and the caller's token deny-list (calls in the caller's slot) */
    char script[48];
    /* a family that calls again after the first reply (kb_suggest) keeps the arguments;
     * site calls keep them too (from CD_API_ARG_MODE "as" on: see the enum above) */
    bool keep_args;
    char *args[CD_API_NARGS_SITE];
    const char *(*intervals)(void *ctx, const char *site);
    void *intervals_ctx;
    /* site calls (route slot not 0): the caller's sites to call, the next one, the merged
     * rows so far ([number, id, JSON text]) and the last part's reply object */
    char slot;
    json_t *sites;
    size_t next_site;
    json_t *rows, *last;
    bool csv;       /* reports: format=csv renders the reply's columns/rows as CSV */
    char event[48]; /* rules_dry_run: the event type to pretend, "" = none */
    const cd_config *cfg;
    /* two-factor calls (totp.c): the code the caller sent (a recovery code when recovery),
     * the function that makes the change once the code matched, the recovery codes it sets
     * (shown once, in the reply) */
    char code[65]; /* the 6 digits, or the recovery code's hash */
    bool recovery;
    char then[32];
    char codes[CD_AUTH_RECOVERY_N][CD_AUTH_RECOVERY_LEN + 1];
} cd_api_op;

typedef struct cd_api_family {
    const char *script;    /* store/lua/<script>.lua */
    const char *id_prefix; /* prefix of the fresh id each call gets ("m" when NULL) */
    const cd_api_route *routes;
    size_t n_routes;
    /* With the body's params only (before query and path values join them): check or
     * complete them, or replace *params (0); or answer 400 with err (-1). */
    int (*prepare)(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                   size_t errsz);
    /* With every param in place, just before the call. */
    void (*complete)(cd_api_op *a, json_t *params);
    /* A 200 reply: true when the family answered (or called again) itself. */
    bool (*reply)(cd_api_op *a, const char *body, size_t len);
    char slot; /* where its routes run unless a route says (cd_api_route.slot) */
} cd_api_family;

extern const cd_api_family cd_http__api_conversations, cd_http__api_canned, cd_http__api_health, cd_http__api_sites,
    cd_http__api_agents, cd_http__api_kb, cd_http__api_rules, cd_http__api_webhooks, cd_http__api_reports,
    cd_http__api_audit, cd_http__api_totp, cd_http__api_tokens, cd_http__api_mail;

/* CSV replies (reports.c; the audit log's export uses them too): prepare notes format=csv,
 * reply renders a 200 body's "columns" and "rows" as CSV (RFC 4180, formula text quoted). */
int cd_http__api_csv_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                             size_t errsz);
bool cd_http__api_csv_reply(cd_api_op *a, const char *body, size_t len);

/* The OpenAPI 3.1 document of these routes (docs/openapi.json, embedded at build time),
 * served at GET /api/v1/openapi.json; tests/server/96-openapi checks it against the tables. */
extern const char cd_http_openapi_json[];
extern const size_t cd_http_openapi_json_len;

/* Route and run one API call; cb fires exactly once (also for routing errors, at once). */
void cd_http__api_run(cd_store *st, const cd_config *cfg, const cd_api_call *call, cd_api_cb cb, void *ud);
/* The route of a call (NULL when none); *family is set with it. */
const cd_api_route *cd_http__api_route(const cd_api_call *call, const cd_api_family **family);
/* Paths under /api/v1/public/ take no token (call->agent_id ""): public read-only data. */
bool cd_http__api_is_public(const char *path);
/* The "password" of a JSON body, copied into out (<= outsz-1 bytes): 1 if present and
 * min..128 bytes, 0 if absent, -1 if present but invalid. */
int cd_http__api_password(const char *body, size_t len, size_t min, char *out, size_t outsz);
/* Does this call need the caller to hash a password first? */
bool cd_http__api_wants_password(const cd_api_call *call);
/* A webhook create or update that sets a "url": copied into url (< urlsz bytes) so the
 * node can refuse internal addresses before it is stored; false when the call sets none
 * (or one too long: the script refuses it). */
bool cd_http__api_webhook_url(const cd_api_call *call, char *url, size_t urlsz);

/* The scope an API token needs for a route that runs in slot ("read", "write" or
 * "admin"), or NULL when no API token may call it (tokens.c). */
const char *cd_http__api_token_scope(const cd_api_route *r, char slot);
/* The token check in the token's site (op token_auth, api_tokens.lua) with the scope the
 * route needs; its reply (the token as a caller record) goes to cb with a. 0, or -1 when
 * the store is down. */
int cd_http__api_token_auth(cd_api_op *a, const cd_api_call *call, const char *scope, const char *const *args,
                            cd_store_reply_cb cb);

/* Which calls a token of this role may make: an agent token every route but the login's
 * second step; a challenge token only that (POST login/totp); an enrolment token only
 * the enrolment (me/totp: status, enroll, confirm). */
bool cd_http__api_role_allowed(const cd_api_call *call, cd_auth_role role);

/* For the families: answer an error (cb fires), free a finished op, run the op's script
 * again with its kept arguments (0, or -1 when the store is down). */
void cd_http__api_error(cd_api_cb cb, void *ud, cd_err code, const char *message);
void cd_http__api_op_free(cd_api_op *a);
int cd_http__api_call_again(cd_api_op *a);

#endif
