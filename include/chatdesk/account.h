/* account: the agents' accounts as the login sees them (POST /api/v1/login). The lookup
 * by e-mail with the account's login counter (agent_get.lua) and the counter itself
 * (login_attempt.lua), each one call in the agents' slot {a} with its keys declared, each
 * answered as a cd_account. A hello's lookup by id, with the agent's conversations, is
 * conv's (cd_conv_agent_get): it is the agent's welcome. */
#ifndef CHATDESK_ACCOUNT_H
#define CHATDESK_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "chatdesk/base.h"
#include "chatdesk/store.h"

typedef struct cd_account {
    cd_err err;      /* CD_ERR_UNAUTHORIZED: the agent is disabled */
    bool found;      /* an agent has the e-mail */
    char id[80];     /* found: the agent's id */
    char *raw_agent; /* found: the agent as JSON, the login's answer */
    char **sites;    /* found: its sites */
    size_t n_sites;
    char *pw;            /* found: the password's PHC string */
    int64_t token_epoch; /* found: its token epoch (for the token) */
    bool totp;           /* found: two-factor login is on (api_totp.lua) */
    int64_t fails;       /* the account's failed attempts in its window (an unknown e-mail's too) */
    int64_t retry_ms;    /* ms left of that window */
} cd_account;

/* The account is the callback's only for the call. */
typedef void (*cd_account_cb)(void *ud, const cd_account *a);

/* The agent with this e-mail (any case), and the account's counter. 0, or -1 (not sent). */
int cd_account_by_email(cd_store *st, const char *email, cd_account_cb cb, void *ud);
/* An agent token's account (its record by id), checked as a hello checks it: err
 * CD_ERR_UNAUTHORIZED when disabled or the token (epoch, jti) is revoked, CD_ERR_NOT_FOUND
 * when there is no such agent. 0, or -1 (not sent). */
int cd_account_by_id(cd_store *st, const char *aid, int64_t epoch, const char *jti, cd_account_cb cb, void *ud);
/* op "try": count a login attempt of the account before its password is checked (fails
 * counts it); "ok": reset the count after a success; "ok" and "fail" also write the
 * outcome to the audit log (from addr, kept audit_days). 0, or -1 (not sent). */
int cd_account_attempt(cd_store *st, const char *email, const char *op, int64_t window_ms, const char *addr,
                       int64_t audit_days, cd_account_cb cb, void *ud);

#endif
