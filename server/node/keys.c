/* The token keyring: from token_secret (config), or else from Redis, where keys_init.lua
 * keeps the signing keys every node shares and creates the first one with the random key
 * this node offers. Until it is loaded the node answers hellos and API calls
 * "unavailable", so a token is never signed or checked with a key other nodes lack. */
#include <jansson.h>
#include <string.h>

#include "chatdesk/log.h"
#include "chatdesk/node.h"

struct cd_node_keyring {
    cd_store *st;
    cd_auth_keyring ring;
    bool ready, loading;
    int refs; /* the owner + a load in flight */
};

cd_node_keyring *cd_node_keyring_create(cd_store *st, const cd_config *cfg)
{
    cd_node_keyring *k = cd_calloc(1, sizeof *k);
    k->st = st;
    k->refs = 1;
    cd_auth_keyring_init(&k->ring);
    if (cfg->token_secret[0]) {
        if (cd_auth_keyring_add_hex(&k->ring, "cfg", cfg->token_secret) != 0) {
            cd_log_error("token_secret must be 64 hex characters");
            cd_free(k);
            return NULL;
        }
        k->ready = true;
    }
    return k;
}

static void unref(cd_node_keyring *k)
{
    if (--k->refs == 0)
        cd_free(k);
}

void cd_node_keyring_destroy(cd_node_keyring *k)
{
    if (k)
        unref(k);
}

/* keys_init.lua: {"keys":{"<kid>":"<hex>",…}}. */
static void on_keys(void *ud, cd_err err, const char *json, size_t len)
{
    cd_node_keyring *k = ud;
    k->loading = false;
    json_t *root = err == CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    if (err != CD_ERR_OK) {
        cd_log_error("loading token keys failed: %s", cd_err_name(err));
    } else if (k->refs > 1) {
        cd_auth_keyring kr;
        cd_auth_keyring_init(&kr);
        const char *kid;
        json_t *hex;
        json_object_foreach(json_object_get(root, "keys"), kid, hex)
        {
            if (json_is_string(hex) && cd_auth_keyring_add_hex(&kr, kid, json_string_value(hex)) != 0)
                cd_log_error("bad token key kid=%s in Redis", kid);
        }
        if (kr.n > 0) {
            k->ring = kr;
            k->ready = true;
        }
    }
    json_decref(root);
    unref(k);
}

void cd_node_keyring_load(cd_node_keyring *k)
{
    if (k->ready || k->loading || !cd_store_up(k->st))
        return;
    char hex[CD_AUTH_KEY_LEN * 2 + 1], kid[16];
    cd_random_hex(hex, CD_AUTH_KEY_LEN);
    cd_random_hex(kid, 4);
    const char *args[] = {kid, hex};
    cd_key key;
    const char *keys[] = {cd_key_global(&key, cd_store_prefix(k->st), "keys")};
    if (cd_store_fcall(k->st, "keys_init", 1, keys, 2, args, NULL, on_keys, k) == 0) {
        k->loading = true;
        k->refs++;
    }
}

void cd_node_keyring_tick(cd_node_keyring *k, uint64_t now)
{
    (void)now;
    cd_node_keyring_load(k);
}

void cd_node_keyring_on_store(cd_node_keyring *k, bool up)
{
    if (up)
        cd_node_keyring_load(k);
}

bool cd_node_keyring_ready(const cd_node_keyring *k)
{
    return k->ready;
}

const cd_auth_keyring *cd_node_keyring_get(const cd_node_keyring *k)
{
    return &k->ring;
}
