/* rules: automation rules (docs/rules.md). Parse and validate rule JSON, evaluate a
 * rule's trigger and conditions against an event and a conversation snapshot, and turn
 * the replies of the rules scripts (store/lua/rules.lua) into the plans those scripts
 * apply. Pure: no I/O; every input and output is JSON text. */
#ifndef CHATDESK_RULES_H
#define CHATDESK_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/base.h"

#define CD_RULES_MAX_CONDITIONS 20
#define CD_RULES_MAX_ACTIONS 10

/* Validate a rule (JSON object). partial: a PATCH body (every member optional, "id"
 * not allowed). Returns 0, or -1 with a message for the client in err. */
int cd_rules_validate(const char *json, size_t len, bool partial, char *err, size_t errsz);

/* Is this an event type rules can trigger on (docs/rules.md)? */
bool cd_rules_event_type_ok(const char *type);

/* Evaluate one rule against a conversation snapshot (docs/rules.md "Snapshot"), an
 * event ({"t","d","ts","by"} or NULL for a time trigger firing), the time and the site's
 * open intervals ("s1,e1,..." UTC ms, or "*"). Returns 1 (fires), 0 (does not) or -1
 * (the rule is not valid). Disabled rules do not fire. */
int cd_rules_match(const char *rule, const char *event, const char *snapshot, int64_t now, const char *intervals);

/* Which site open intervals to use for a site (business_hours conditions). */
typedef const char *(*cd_rules_intervals_fn)(void *ud, const char *site);

/* Plan a rules_batch reply (events, snapshots, rules): the rules_apply plan
 * {"expect","cursor","fire":[{"rule","site","cid","event","actions"}],
 *  "arm":[{"member","due"}]}, malloc'd (cd_free), or NULL if the reply is malformed. */
char *cd_rules_plan_batch(const char *json, size_t len, cd_rules_intervals_fn iv, void *ud);

/* Plan a time trigger firing: reply of rules.lua "timer_get" ({"rule","conv"} or
 * {"gone":true}) -> {"fire":[...]} (empty when the conditions no longer hold). */
char *cd_rules_plan_timer(const char *json, size_t len, int64_t now, const char *intervals);

/* Dry run: {"rules":[...],"conv":{...},"last_message":{...}|null} -> {"rules":[{"id","name","enabled",
 * "trigger","would_fire","conditions":[{...,"result"}],"actions"}]}. event: an event
 * type to pretend happened (message.created: the latest message is its message), or NULL
 * (then event-triggered rules are checked on their conditions only). */
char *cd_rules_dry_run(const char *json, size_t len, const char *event, int64_t now, const char *intervals);

#endif
