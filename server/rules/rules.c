/* Automation rules: validation, evaluation and planning (docs/rules.md). The scripts in
 * store/lua/rules.lua read what a decision needs and apply the plan made here. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chatdesk/rules.h"

static const char *const EVENT_TYPES[] = {
    "conversation.created",  "message.created",      "conversation.status_changed",
    "conversation.assigned", "conversation.updated", "ticket.created",
    "sla.warning",           "sla.breached",         "csat.submitted",
};
static const char *const STATUSES[] = {"queued", "open", "pending", "resolved", "closed"};
static const char *const PRIORITIES[] = {"low", "normal", "high", "urgent"};
static const char *const FIELDS[] = {
    "category",  "priority",       "status",     "team",         "assignee",      "subject",
    "tags",      "text",           "visitor.id", "visitor.name", "visitor.email", "visitor.user_id",
    "responded", "business_hours", "site",
};
static const char *const OPS[] = {"eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with",
                                  "gt", "gte", "lt", "lte",    "exists",   "not_exists"};
static const char *const ACTIONS[] = {"assign_team",      "assign_agent",  "set_priority", "add_tags",
                                      "set_status",       "send_message",  "send_canned",  "private_note",
                                      "notify_team_lead", "notify_admins", "webhook"};

static bool one_of(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}
#define ONE_OF(s, list) one_of((s), (list), CD_ARRAY_LEN(list))

#define bad(err, errsz, ...) (snprintf((err), (errsz), __VA_ARGS__), -1)

bool cd_rules_event_type_ok(const char *type)
{
    return ONE_OF(type, EVENT_TYPES);
}

/* ---------- validation ---------- */

static bool str_ok(json_t *v, size_t min, size_t max)
{
    return json_is_string(v) && json_string_length(v) >= min && json_string_length(v) <= max;
}

static bool key_ok(json_t *v)
{
    if (!str_ok(v, 1, 64))
        return false;
    for (const char *p = json_string_value(v); *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-'))
            return false;
    return true;
}

static bool only_keys(json_t *o, const char *const *allowed, size_t n, char *err, size_t errsz, const char *what)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        (void)v;
        if (!one_of(k, allowed, n)) {
            snprintf(err, errsz, "%s: unknown member \"%.60s\"", what, k);
            return false;
        }
    }
    return true;
}

static bool field_ok(const char *f)
{
    if (ONE_OF(f, FIELDS))
        return true;
    if (strncmp(f, "attributes.", 11) == 0 && f[11] && strlen(f) <= 80)
        return true;
    return strncmp(f, "event.", 6) == 0 && f[6] && strlen(f) <= 80;
}

static int validate_condition(json_t *c, size_t i, char *err, size_t errsz)
{
    char what[48];
    snprintf(what, sizeof what, "conditions[%zu]", i);
    static const char *const keys[] = {"field", "op", "value"};
    if (!json_is_object(c))
        return bad(err, errsz, "%s must be an object", what);
    if (!only_keys(c, keys, CD_ARRAY_LEN(keys), err, errsz, what))
        return -1;
    const char *f = json_string_value(json_object_get(c, "field"));
    const char *op = json_string_value(json_object_get(c, "op"));
    json_t *v = json_object_get(c, "value");
    if (!f || !field_ok(f)) {
        snprintf(err, errsz,
                 "%s: field must be one of category, priority, status, team, assignee, subject, tags, text, "
                 "visitor.id, visitor.name, visitor.email, visitor.user_id, responded, business_hours, site, "
                 "attributes.<name>, event.<path>",
                 what);
        return -1;
    }
    if (!op || !ONE_OF(op, OPS)) {
        snprintf(err, errsz,
                 "%s: op must be one of eq, neq, in, not_in, contains, not_contains, starts_with, gt, gte, lt, lte, "
                 "exists, not_exists",
                 what);
        return -1;
    }
    bool boolean = strcmp(f, "responded") == 0 || strcmp(f, "business_hours") == 0;
    if (boolean) {
        if ((strcmp(op, "eq") != 0 && strcmp(op, "neq") != 0) || !json_is_boolean(v))
            return bad(err, errsz, "%s: responded and business_hours take op eq or neq and a true/false value", what);
        return 0;
    }
    if (strcmp(op, "exists") == 0 || strcmp(op, "not_exists") == 0) {
        if (v && !json_is_null(v))
            return bad(err, errsz, "%s: exists and not_exists take no value", what);
        return 0;
    }
    if (strcmp(op, "in") == 0 || strcmp(op, "not_in") == 0) {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 50)
            return bad(err, errsz, "%s: in and not_in take an array of 1 to 50 values", what);
        size_t k;
        json_t *x;
        json_array_foreach(v, k, x)
        {
            if (!(str_ok(x, 0, 200) || json_is_number(x) || json_is_boolean(x)))
                return bad(err, errsz, "%s: in and not_in values must be strings, numbers or booleans", what);
        }
        return 0;
    }
    if (strcmp(op, "contains") == 0 || strcmp(op, "not_contains") == 0 || strcmp(op, "starts_with") == 0) {
        if (!str_ok(v, 1, 500))
            return bad(err, errsz, "%s: contains, not_contains and starts_with take a string of 1 to 500 bytes", what);
        return 0;
    }
    if (op[0] == 'g' || op[0] == 'l') {
        if (strcmp(f, "priority") == 0) {
            if (!ONE_OF(json_string_value(v), PRIORITIES))
                return bad(err, errsz, "%s: priority compares with low, normal, high or urgent", what);
            return 0;
        }
        if (!json_is_number(v))
            return bad(err, errsz, "%s: gt, gte, lt and lte take a number", what);
        return 0;
    }
    /* eq, neq */
    if (!(str_ok(v, 0, 500) || json_is_number(v) || json_is_boolean(v) || json_is_null(v)))
        return bad(err, errsz, "%s: eq and neq take a string, number, boolean or null", what);
    if (strcmp(f, "priority") == 0 && !ONE_OF(json_string_value(v), PRIORITIES))
        return bad(err, errsz, "%s: priority is low, normal, high or urgent", what);
    if (strcmp(f, "status") == 0 && !ONE_OF(json_string_value(v), STATUSES))
        return bad(err, errsz, "%s: status is queued, open, pending, resolved or closed", what);
    return 0;
}

static int validate_action(json_t *a, size_t i, char *err, size_t errsz)
{
    char what[48];
    snprintf(what, sizeof what, "actions[%zu]", i);
    if (!json_is_object(a))
        return bad(err, errsz, "%s must be an object", what);
    const char *t = json_string_value(json_object_get(a, "type"));
    if (!t || !ONE_OF(t, ACTIONS))
        return bad(err, errsz,
                   "%s: type must be one of assign_team, assign_agent, set_priority, add_tags, set_status, "
                   "send_message, send_canned, private_note, notify_team_lead, notify_admins, webhook",
                   what);
    json_t *v;
    if (strcmp(t, "assign_team") == 0 || strcmp(t, "notify_team_lead") == 0) {
        static const char *const keys[] = {"type", "team", "title"};
        if (!only_keys(a, keys, CD_ARRAY_LEN(keys), err, errsz, what))
            return -1;
        v = json_object_get(a, "team");
        if (t[0] == 'a' ? !key_ok(v) : (v && !json_is_null(v) && !key_ok(v)))
            return bad(err, errsz, "%s: team must be a team key (1-64 of A-Z a-z 0-9 _ -)", what);
        v = json_object_get(a, "title");
        if (v && (t[0] == 'a' || !str_ok(v, 1, 200)))
            return bad(err, errsz, "%s: title must be a string of 1 to 200 bytes", what);
        return 0;
    }
    if (strcmp(t, "notify_admins") == 0) {
        static const char *const keys[] = {"type", "title"};
        if (!only_keys(a, keys, CD_ARRAY_LEN(keys), err, errsz, what))
            return -1;
        v = json_object_get(a, "title");
        if (v && !str_ok(v, 1, 200))
            return bad(err, errsz, "%s: title must be a string of 1 to 200 bytes", what);
        return 0;
    }
    const char *member = strcmp(t, "assign_agent") == 0   ? "agent"
                         : strcmp(t, "set_priority") == 0 ? "priority"
                         : strcmp(t, "add_tags") == 0     ? "tags"
                         : strcmp(t, "set_status") == 0   ? "status"
                         : strcmp(t, "send_canned") == 0  ? "canned"
                         : strcmp(t, "webhook") == 0      ? "webhook"
                                                          : "body";
    const char *keys[] = {"type", member};
    if (!only_keys(a, keys, 2, err, errsz, what))
        return -1;
    v = json_object_get(a, member);
    if (strcmp(member, "priority") == 0) {
        if (!ONE_OF(json_string_value(v), PRIORITIES))
            return bad(err, errsz, "%s: priority must be low, normal, high or urgent", what);
    } else if (strcmp(member, "status") == 0) {
        const char *s = json_string_value(v);
        if (!s || !ONE_OF(s, STATUSES) || strcmp(s, "queued") == 0)
            return bad(err, errsz, "%s: status must be open, pending, resolved or closed", what);
    } else if (strcmp(member, "tags") == 0) {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 20)
            return bad(err, errsz, "%s: tags must be an array of 1 to 20 tags", what);
        size_t k;
        json_t *x;
        json_array_foreach(v, k, x)
        {
            if (!str_ok(x, 1, 64))
                return bad(err, errsz, "%s: each tag is a string of 1 to 64 bytes", what);
        }
    } else if (strcmp(member, "body") == 0) {
        if (!str_ok(v, 1, 4000))
            return bad(err, errsz, "%s: body must be a string of 1 to 4000 bytes", what);
    } else if (!str_ok(v, 1, 64)) {
        snprintf(err, errsz, "%s: %s must be an id (a string of 1 to 64 bytes)", what, member);
        return -1;
    }
    return 0;
}

static int validate_trigger(json_t *t, char *err, size_t errsz)
{
    static const char *const keys[] = {"event", "time"};
    if (!json_is_object(t) || json_object_size(t) != 1)
        return bad(err, errsz, "trigger must be {\"event\":<type>} or {\"time\":{\"after_s\",\"since\"}}");
    if (!only_keys(t, keys, 2, err, errsz, "trigger"))
        return -1;
    json_t *e = json_object_get(t, "event");
    if (e) {
        if (!ONE_OF(json_string_value(e), EVENT_TYPES))
            return bad(err, errsz, "%s",
                       "trigger.event must be one of conversation.created, message.created, "
                       "conversation.status_changed, conversation.assigned, conversation.updated, ticket.created, "
                       "sla.warning, sla.breached, csat.submitted");
        return 0;
    }
    json_t *tm = json_object_get(t, "time");
    static const char *const tkeys[] = {"after_s", "since"};
    if (!json_is_object(tm))
        return bad(err, errsz, "trigger.time must be an object {\"after_s\",\"since\"}");
    if (!only_keys(tm, tkeys, 2, err, errsz, "trigger.time"))
        return -1;
    json_t *after = json_object_get(tm, "after_s");
    if (!json_is_integer(after) || json_integer_value(after) < 1 || json_integer_value(after) > 90LL * 86400)
        return bad(err, errsz, "trigger.time.after_s must be an integer from 1 to 7776000 (90 days)");
    const char *since = json_string_value(json_object_get(tm, "since"));
    bool ok = since && (strcmp(since, "created") == 0 || strcmp(since, "assigned") == 0 ||
                        (strncmp(since, "status:", 7) == 0 && ONE_OF(since + 7, STATUSES)));
    if (!ok)
        return bad(err, errsz, "trigger.time.since must be created, assigned or status:<status>");
    return 0;
}

static int validate(json_t *r, bool partial, char *err, size_t errsz)
{
    static const char *const keys[] = {"id", "name", "enabled", "match", "trigger", "conditions", "actions"};
    if (!json_is_object(r))
        return bad(err, errsz, "a rule must be a JSON object");
    if (!only_keys(r, keys, CD_ARRAY_LEN(keys), err, errsz, "rule"))
        return -1;
    json_t *v = json_object_get(r, "id");
    if (v && (partial || !key_ok(v)))
        return bad(err, errsz, partial ? "id cannot change" : "id must be 1-64 of A-Z a-z 0-9 _ -");
    v = json_object_get(r, "name");
    if ((v || !partial) && !str_ok(v, 1, 200))
        return bad(err, errsz, "name must be a string of 1 to 200 bytes");
    v = json_object_get(r, "enabled");
    if (v && !json_is_boolean(v))
        return bad(err, errsz, "enabled must be true or false");
    v = json_object_get(r, "match");
    if (v &&
        !(json_is_string(v) && (strcmp(json_string_value(v), "all") == 0 || strcmp(json_string_value(v), "any") == 0)))
        return bad(err, errsz, "match must be all or any");
    v = json_object_get(r, "trigger");
    if ((v || !partial) && validate_trigger(v, err, errsz) != 0)
        return -1;
    v = json_object_get(r, "conditions");
    if (v && (!json_is_array(v) || json_array_size(v) > CD_RULES_MAX_CONDITIONS))
        return bad(err, errsz, "conditions must be an array of at most 20 conditions");
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (validate_condition(x, i, err, errsz) != 0)
            return -1;
    }
    v = json_object_get(r, "actions");
    if ((v || !partial) && (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > CD_RULES_MAX_ACTIONS))
        return bad(err, errsz, "actions must be an array of 1 to 10 actions");
    json_array_foreach(v, i, x)
    {
        if (validate_action(x, i, err, errsz) != 0)
            return -1;
    }
    return 0;
}

int cd_rules_validate(const char *json, size_t len, bool partial, char *err, size_t errsz)
{
    json_error_t je;
    json_t *r = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!r) {
        snprintf(err, errsz, "not valid JSON: %s", je.text);
        return -1;
    }
    int rc = validate(r, partial, err, errsz);
    json_decref(r);
    return rc;
}

/* ---------- evaluation ---------- */

typedef struct ctx {
    json_t *conv;  /* snapshot */
    json_t *event; /* {"t","d",...} or NULL */
    int64_t now;
    const char *intervals;
} ctx;

static bool in_hours(const char *iv, int64_t now)
{
    if (!iv || !*iv || strcmp(iv, "*") == 0)
        return true;
    const char *p = iv;
    int64_t last = 0;
    while (*p) {
        char *e;
        long long s = strtoll(p, &e, 10);
        if (*e != ',')
            return false;
        long long t = strtoll(e + 1, &e, 10);
        if (now >= s && now < t)
            return true;
        last = t;
        if (*e != ',')
            break;
        p = e + 1;
    }
    /* beyond the computed intervals counts as open, as in the SLA arithmetic */
    return last > 0 && now >= last;
}

static json_t *path_get(json_t *o, const char *path)
{
    char buf[96];
    cd_strlcpy(buf, path, sizeof buf);
    char *save, *seg = strtok_r(buf, ".", &save);
    while (seg && o) {
        o = json_object_get(o, seg);
        seg = strtok_r(NULL, ".", &save);
    }
    return o;
}

/* The value of a field: a new reference, or NULL (missing). */
static json_t *field_value(const ctx *x, const char *f)
{
    json_t *v = NULL;
    if (strcmp(f, "business_hours") == 0)
        return json_boolean(in_hours(x->intervals, x->now));
    if (strcmp(f, "responded") == 0) {
        json_t *fr = json_object_get(x->conv, "first_response_at");
        return json_boolean(fr && !json_is_null(fr) && !(json_is_string(fr) && !*json_string_value(fr)));
    }
    if (strcmp(f, "text") == 0) {
        /* a message: the new one, or the first one of a new conversation (its data carries
         * that body, _ev_rules.lua); the subject is a field of its own */
        const char *t = json_string_value(json_object_get(x->event, "t"));
        if (t && (strcmp(t, "message.created") == 0 || strcmp(t, "conversation.created") == 0))
            v = path_get(x->event, "d.body");
        else
            v = json_object_get(x->conv, "subject");
    } else if (strncmp(f, "visitor.", 8) == 0) {
        v = json_object_get(json_object_get(x->conv, "visitor"), f + 8);
    } else if (strncmp(f, "attributes.", 11) == 0) {
        v = json_object_get(path_get(x->conv, "visitor.attributes"), f + 11);
    } else if (strncmp(f, "event.", 6) == 0) {
        v = x->event ? path_get(json_object_get(x->event, "d"), f + 6) : NULL;
    } else {
        v = json_object_get(x->conv, f);
    }
    if (!v || json_is_null(v))
        return NULL;
    return json_incref(v);
}

static bool present(json_t *v)
{
    if (!v || json_is_null(v))
        return false;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    return true;
}

static bool scalar_eq(json_t *a, json_t *b)
{
    if (json_is_string(a) && json_is_string(b))
        return strcasecmp(json_string_value(a), json_string_value(b)) == 0;
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_is_string(a) && json_is_number(b)) { /* attributes arrive as text or numbers */
        char *end;
        double d = strtod(json_string_value(a), &end);
        return end != json_string_value(a) && !*end && d == json_number_value(b);
    }
    if (json_is_number(a) && json_is_string(b))
        return scalar_eq(b, a);
    if (json_is_boolean(a) && json_is_boolean(b))
        return json_is_true(a) == json_is_true(b);
    if (json_is_boolean(a) && json_is_string(b))
        return strcasecmp(json_string_value(b), json_is_true(a) ? "true" : "false") == 0;
    if (json_is_string(a) && json_is_boolean(b))
        return scalar_eq(b, a);
    return false;
}

/* a scalar, or an array with an element equal to b */
static bool has_eq(json_t *a, json_t *b)
{
    if (json_is_array(a)) {
        size_t i;
        json_t *e;
        json_array_foreach(a, i, e)
        {
            if (scalar_eq(e, b))
                return true;
        }
        return false;
    }
    return scalar_eq(a, b);
}

static int prio_rank(const char *p)
{
    for (size_t i = 0; p && i < CD_ARRAY_LEN(PRIORITIES); i++)
        if (strcmp(p, PRIORITIES[i]) == 0)
            return (int)i;
    return -1;
}

static bool number_of(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_string(v)) {
        char *end;
        *out = strtod(json_string_value(v), &end);
        return end != json_string_value(v) && !*end;
    }
    return false;
}

static bool eval_condition(const ctx *x, json_t *c)
{
    const char *f = json_string_value(json_object_get(c, "field"));
    const char *op = json_string_value(json_object_get(c, "op"));
    json_t *want = json_object_get(c, "value");
    if (!f || !op)
        return false;
    json_t *v = field_value(x, f);
    bool r = false;
    if (strcmp(op, "exists") == 0) {
        r = present(v);
    } else if (strcmp(op, "not_exists") == 0) {
        r = !present(v);
    } else if (!v) {
        /* a missing field matches only the negative operators (and eq null) */
        r = strcmp(op, "neq") == 0 || strcmp(op, "not_in") == 0 || strcmp(op, "not_contains") == 0 ||
            (strcmp(op, "eq") == 0 && json_is_null(want));
    } else if (strcmp(op, "eq") == 0 || strcmp(op, "neq") == 0) {
        bool eq = json_is_null(want) ? !present(v) : has_eq(v, want);
        r = (op[0] == 'e') == eq;
    } else if (strcmp(op, "in") == 0 || strcmp(op, "not_in") == 0) {
        bool any = false;
        size_t i;
        json_t *w;
        json_array_foreach(want, i, w)
        {
            if (has_eq(v, w))
                any = true;
        }
        r = (op[0] == 'i') == any;
    } else if (strcmp(op, "contains") == 0 || strcmp(op, "not_contains") == 0 || strcmp(op, "starts_with") == 0) {
        const char *w = json_string_value(want);
        bool hit = false;
        if (w && json_is_string(v)) {
            const char *s = json_string_value(v);
            hit = op[0] == 's' ? strncasecmp(s, w, strlen(w)) == 0 : strcasestr(s, w) != NULL;
        } else if (w && json_is_array(v) && op[0] != 's') {
            hit = has_eq(v, want);
        }
        r = (strcmp(op, "not_contains") != 0) == hit;
    } else { /* gt gte lt lte */
        double a, b;
        bool ok;
        if (strcmp(f, "priority") == 0) {
            int ra = prio_rank(json_string_value(v)), rb = prio_rank(json_string_value(want));
            ok = ra >= 0 && rb >= 0;
            a = ra;
            b = rb;
        } else {
            ok = number_of(v, &a) && number_of(want, &b);
        }
        if (ok) {
            if (strcmp(op, "gt") == 0)
                r = a > b;
            else if (strcmp(op, "gte") == 0)
                r = a >= b;
            else if (strcmp(op, "lt") == 0)
                r = a < b;
            else
                r = a <= b;
        }
    }
    json_decref(v);
    return r;
}

static bool conditions_hold(const ctx *x, json_t *rule, json_t *results)
{
    json_t *conds = json_object_get(rule, "conditions");
    const char *m = json_string_value(json_object_get(rule, "match"));
    bool any = m && strcmp(m, "any") == 0;
    size_t n = json_array_size(conds), i;
    if (n == 0)
        return true;
    bool all_ok = true, any_ok = false;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        bool r = eval_condition(x, c);
        if (results) {
            json_t *o = json_deep_copy(c);
            json_object_set_new(o, "result", json_boolean(r));
            json_array_append_new(results, o);
        }
        all_ok = all_ok && r;
        any_ok = any_ok || r;
    }
    return any ? any_ok : all_ok;
}

static bool enabled(json_t *rule)
{
    json_t *e = json_object_get(rule, "enabled");
    return !e || json_is_true(e);
}

static const char *trigger_event(json_t *rule)
{
    return json_string_value(json_object_get(json_object_get(rule, "trigger"), "event"));
}

static json_t *trigger_time(json_t *rule)
{
    return json_object_get(json_object_get(rule, "trigger"), "time");
}

int cd_rules_match(const char *rule, const char *event, const char *snapshot, int64_t now, const char *intervals)
{
    char err[256];
    json_t *r = json_loads(rule, 0, NULL);
    json_t *ev = event ? json_loads(event, 0, NULL) : NULL;
    json_t *conv = json_loads(snapshot, 0, NULL);
    int rc = -1;
    if (r && conv && (!event || ev) && validate(r, false, err, sizeof err) == 0) {
        ctx x = {conv, ev, now, intervals};
        rc = 0;
        if (enabled(r)) {
            const char *te = trigger_event(r);
            bool trig = ev ? (te && json_is_string(json_object_get(ev, "t")) &&
                              strcmp(te, json_string_value(json_object_get(ev, "t"))) == 0)
                           : !te;
            rc = trig && conditions_hold(&x, r, NULL);
        }
    }
    json_decref(r);
    json_decref(ev);
    json_decref(conv);
    return rc;
}

/* ---------- planning ---------- */

static const char *opt(const char *s)
{
    return s ? s : "";
}

static json_t *fire_item(json_t *rule, const char *site, const char *cid, const char *event_id)
{
    return json_pack("{s:O?,s:O?,s:s,s:s,s:s?,s:O?}", "rule", json_object_get(rule, "id"), "name",
                     json_object_get(rule, "name"), "site", site, "cid", cid, "event", event_id, "actions",
                     json_object_get(rule, "actions"));
}

/* A time rule's anchor: does this event start its clock? */
static bool anchors(json_t *tm, const char *type, json_t *ev)
{
    const char *since = json_string_value(json_object_get(tm, "since"));
    if (!since || !type)
        return false;
    if (strcmp(since, "created") == 0)
        return strcmp(type, "conversation.created") == 0;
    if (strcmp(since, "assigned") == 0)
        return strcmp(type, "conversation.assigned") == 0;
    if (strncmp(since, "status:", 7) == 0 && strcmp(type, "conversation.status_changed") == 0) {
        const char *to = json_string_value(path_get(ev, "d.to"));
        return to && strcmp(to, since + 7) == 0;
    }
    return false;
}

/* out as compact JSON text the caller frees with cd_free (consumes out). */
static char *dump_out(json_t *out)
{
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    char *copy = s ? cd_strndup(s, strlen(s)) : NULL;
    free(s);
    return copy;
}

char *cd_rules_plan_batch(const char *json, size_t len, cd_rules_intervals_fn ivfn, void *ud)
{
    json_t *in = json_loadb(json, len, 0, NULL);
    json_t *events = json_object_get(in, "events"), *convs = json_object_get(in, "convs");
    json_t *rules = json_object_get(in, "rules");
    if (!json_is_array(events) || !json_is_string(json_object_get(in, "expect"))) {
        json_decref(in);
        return NULL;
    }
    json_t *fire = json_array(), *arm = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *site = json_string_value(json_object_get(ev, "s"));
        const char *cid = json_string_value(json_object_get(ev, "c"));
        const char *type = json_string_value(json_object_get(ev, "t"));
        const char *by = json_string_value(json_object_get(ev, "by"));
        const char *eid = json_string_value(json_object_get(ev, "id"));
        json_t *conv = cid ? json_object_get(convs, cid) : NULL;
        if (!site || !cid || !type || !json_is_object(conv))
            continue;
        /* events that rules caused arm time triggers but never fire event rules again */
        bool by_rule = by && strncmp(by, "rule:", 5) == 0;
        json_t *ts = json_object_get(ev, "ts");
        int64_t when = json_is_integer(ts) ? json_integer_value(ts) : 0;
        ctx x = {conv, ev, when, ivfn ? ivfn(ud, site) : "*"};
        size_t k;
        json_t *r;
        json_array_foreach(json_object_get(rules, site), k, r)
        {
            if (!enabled(r))
                continue;
            const char *te = trigger_event(r);
            json_t *tm = trigger_time(r);
            if (te && !by_rule && strcmp(te, type) == 0 && conditions_hold(&x, r, NULL))
                json_array_append_new(fire, fire_item(r, site, cid, eid));
            if (tm && anchors(tm, type, ev)) {
                char member[256];
                snprintf(member, sizeof member, "rule|%s|%s|%s", site, opt(json_string_value(json_object_get(r, "id"))),
                         cid);
                json_int_t after = json_integer_value(json_object_get(tm, "after_s"));
                json_array_append_new(arm,
                                      json_pack("{s:s,s:I}", "member", member, "due", (json_int_t)when + after * 1000));
            }
        }
    }
    json_t *out = json_pack("{s:O,s:O?,s:o,s:o}", "expect", json_object_get(in, "expect"), "cursor",
                            json_object_get(in, "last"), "fire", fire, "arm", arm);
    json_decref(in);
    return dump_out(out);
}

/* A time rule fires only while the state it counts from lasts: still in that status,
 * still assigned; never on a closed conversation (unless it counts from closing). */
static bool still_anchored(json_t *tm, json_t *conv)
{
    const char *since = json_string_value(json_object_get(tm, "since"));
    const char *status = json_string_value(json_object_get(conv, "status"));
    if (!since || !status)
        return false;
    if (strncmp(since, "status:", 7) == 0)
        return strcmp(status, since + 7) == 0;
    if (strcmp(status, "closed") == 0)
        return false;
    if (strcmp(since, "assigned") == 0)
        return present(json_object_get(conv, "assignee"));
    return true;
}

char *cd_rules_plan_timer(const char *json, size_t len, int64_t now, const char *intervals)
{
    json_t *in = json_loadb(json, len, 0, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return NULL;
    }
    json_t *fire = json_array();
    json_t *r = json_object_get(in, "rule"), *conv = json_object_get(in, "conv");
    if (json_is_object(r) && json_is_object(conv) && enabled(r) && trigger_time(r) &&
        still_anchored(trigger_time(r), conv)) {
        ctx x = {conv, NULL, now, intervals};
        if (conditions_hold(&x, r, NULL))
            json_array_append_new(fire, fire_item(r, opt(json_string_value(json_object_get(conv, "site"))),
                                                  opt(json_string_value(json_object_get(conv, "id"))), NULL));
    }
    json_t *out = json_pack("{s:o}", "fire", fire);
    json_decref(in);
    return dump_out(out);
}

char *cd_rules_dry_run(const char *json, size_t len, const char *event, int64_t now, const char *intervals)
{
    json_t *in = json_loadb(json, len, 0, NULL);
    json_t *conv = json_object_get(in, "conv");
    if (!json_is_object(conv)) {
        json_decref(in);
        return NULL;
    }
    /* a message.created dry run reads the latest message as the event's, a
     * conversation.created one the first message's body (as the rules consumer does) */
    json_t *last = json_object_get(in, "last_message");
    json_t *first = json_object_get(in, "first_message");
    json_t *ev = NULL;
    if (event && strcmp(event, "message.created") == 0 && json_is_object(last))
        ev = json_pack("{s:s,s:O}", "t", event, "d", last);
    else if (event && strcmp(event, "conversation.created") == 0 && json_is_object(first))
        ev = json_pack("{s:s,s:O}", "t", event, "d", first);
    else if (event)
        ev = json_pack("{s:s,s:{}}", "t", event, "d");
    ctx x = {conv, ev, now, intervals};
    json_t *list = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(in, "rules"), i, r)
    {
        json_t *results = json_array();
        bool cond = conditions_hold(&x, r, results);
        const char *te = trigger_event(r);
        bool trig = event ? (te && strcmp(te, event) == 0) : true;
        json_array_append_new(list, json_pack("{s:O?,s:O?,s:b,s:O?,s:b,s:b,s:o,s:O?}", "id", json_object_get(r, "id"),
                                              "name", json_object_get(r, "name"), "enabled", enabled(r), "trigger",
                                              json_object_get(r, "trigger"), "trigger_matches", trig, "would_fire",
                                              enabled(r) && trig && cond, "conditions", results, "actions",
                                              json_object_get(r, "actions")));
    }
    json_t *out = json_pack("{s:o,s:b}", "rules", list, "business_hours", in_hours(intervals, now));
    json_decref(ev);
    json_decref(in);
    return dump_out(out);
}
