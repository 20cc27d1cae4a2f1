/* The login request body. */
#include <jansson.h>
#include <string.h>

#include "chatdesk/proto.h"

cd_err cd_proto_decode_login(const char *buf, size_t len, char *email, size_t email_sz, char *password,
                             size_t password_sz, const char **errmsg)
{
    json_error_t e;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    cd_err rc = CD_ERR_BAD_REQUEST;
    *errmsg = "body must be a JSON object with email and password";
    if (!json_is_object(root))
        goto out;
    json_t *em = json_object_get(root, "email"), *pw = json_object_get(root, "password");
    if (!json_is_string(em) || !json_is_string(pw))
        goto out;
    size_t el = json_string_length(em), pl = json_string_length(pw);
    if (el == 0 || el > 254 || el >= email_sz || pl == 0 || pl > 128 || pl >= password_sz) {
        *errmsg = "email or password has a bad length";
        goto out;
    }
    if (memchr(json_string_value(em), 0, el) || memchr(json_string_value(pw), 0, pl))
        goto out;
    memcpy(email, json_string_value(em), el + 1);
    memcpy(password, json_string_value(pw), pl + 1);
    rc = CD_ERR_OK;
    *errmsg = NULL;
out:
    json_decref(root);
    return rc;
}
