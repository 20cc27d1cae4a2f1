/* API family: a site's outgoing mail (store/lua/api_mail.lua, docs/api.md "E-mail"): the
 * outbox as an admin sees it and a test mail. The node's SMTP settings are the node's
 * (config), so prepare adds the node's default From address to the test mail's params
 * (its Message-ID domain when the site has no address of its own) and whether the node can
 * send mail at all; the function refuses a test mail on a node that cannot, after the
 * caller's rights are checked (so a token without the scope gets 403, not this). */
#include "api_int.h"

#include <string.h>

#include "chatdesk/base.h"

static const cd_api_route mail_routes[] = {
    {"GET", "admin/sites/:/mail", "admin_mail_list", {"site_key"}, false, 0},
    {"POST", "admin/sites/:/mail/test", "admin_mail_test", {"site_key"}, true, 0},
};

static int mail_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                        size_t errsz)
{
    (void)call;
    (void)err;
    (void)errsz;
    if (strcmp(r->op, "admin_mail_test") != 0)
        return 0;
    json_object_set_new(*params, "node_from", json_string(a->cfg->mail_from));
    json_object_set_new(*params, "node_smtp", json_boolean(a->cfg->smtp_url[0] != '\0'));
    return 0;
}

const cd_api_family cd_http__api_mail = {
    "api_mail", NULL, mail_routes, CD_ARRAY_LEN(mail_routes), mail_prepare, NULL, NULL, CD_API_SITE,
};
