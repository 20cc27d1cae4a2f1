/* Key builders (docs/keyspace.md): every key a C caller declares to a script call is
 * made here, so the layout lives in this file and in store/lua/ only. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chatdesk/store.h"

static const char *keyf(cd_key *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *keyf(cd_key *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->s, sizeof k->s, fmt, ap);
    va_end(ap);
    return k->s;
}

/* State that spans sites lives under one hash tag per owner, so each of its calls runs on
 * one slot: {a} for agents (presence), {g} for the rest (the sites set, signing keys).
 * The event stream and the webhook due set keep their names (they move with the event
 * stream, per site). */
static const struct {
    const char *name, *tag;
} global_tags[] = {{"sites", "{g}:"}, {"keys", "{g}:"}, {"presence", "{a}:"}};

const char *cd_key_global(cd_key *k, const char *P, const char *name)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(global_tags); i++)
        if (strcmp(name, global_tags[i].name) == 0)
            return keyf(k, "%s%s%s", P, global_tags[i].tag, name);
    return keyf(k, "%s%s", P, name);
}

const char *cd_key_site(cd_key *k, const char *P, const char *site, const char *suffix)
{
    return keyf(k, "%s{s:%s}:%s", P, site, suffix && suffix[0] == ':' ? suffix + 1 : "site");
}

const char *cd_key_tagged(cd_key *k, const char *P, const char *site, const char *suffix)
{
    return keyf(k, "%s{s:%s}:%s", P, site, suffix);
}

const char *cd_key_cid_site(const char *cid)
{
    const char *dot = strrchr(cid, '.');
    return dot && dot[1] ? dot + 1 : NULL;
}

const char *cd_key_conv(cd_key *k, const char *P, const char *site, const char *cid)
{
    const char *s = cd_key_cid_site(cid);
    return keyf(k, "%s{s:%s}:conv:%s", P, s ? s : site ? site : "", cid);
}

const char *cd_key_agent(cd_key *k, const char *P, const char *id)
{
    return keyf(k, "%s{a}:agent:%s", P, id);
}

const char *cd_key_agents(cd_key *k, const char *P)
{
    return keyf(k, "%s{a}:agents", P);
}

const char *cd_key_site_agent(cd_key *k, const char *P, const char *site, const char *id)
{
    return keyf(k, "%s{s:%s}:agent:%s", P, site, id);
}

/* P + head + the e-mail lower-cased (e-mail addresses index case-insensitively). */
static const char *key_email(cd_key *k, const char *P, const char *head, const char *email)
{
    int n = snprintf(k->s, sizeof k->s, "%s%s", P, head);
    size_t i = n > 0 ? (size_t)n : 0;
    for (; *email && i + 1 < sizeof k->s; email++)
        k->s[i++] = (char)tolower((unsigned char)*email);
    k->s[i < sizeof k->s ? i : sizeof k->s - 1] = '\0';
    return k->s;
}

const char *cd_key_agent_email(cd_key *k, const char *P, const char *email)
{
    return key_email(k, P, "{a}:agent:email:", email);
}

/* The agent slot {a} (docs/keyspace.md "Where this is going"): cross-site agent state. */
const char *cd_key_login_fails(cd_key *k, const char *P, const char *email)
{
    return key_email(k, P, "{a}:login:fails:", email);
}

const char *cd_key_agent_revoked(cd_key *k, const char *P, const char *id)
{
    return keyf(k, "%s{a}:revoked:%s", P, id);
}
