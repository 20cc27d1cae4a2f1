/* API family: reports, the daily support metrics the reports consumer keeps
 * (store/lua/api_reports.lua, docs/reports.md). With format=csv a reply's "columns" and
 * "rows" are rendered here as CSV (RFC 4180), with text that starts like a spreadsheet
 * formula quoted so that opening the file runs nothing. */
#include "api_int.h"

#include <string.h>

#include "chatdesk/base.h"

static const cd_api_route report_routes[] = {
    {"GET", "reports/summary", "reports_summary", {0}, false, 0},
    {"GET", "reports/daily", "reports_daily", {0}, false, 0},
    {"GET", "reports/agents", "reports_agents", {0}, false, 0},
    {"GET", "reports/teams", "reports_teams", {0}, false, 0},
};

static void csv_field(cd_buf *b, json_t *v)
{
    if (json_is_integer(v)) {
        cd_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        cd_buf_printf(b, "%.10g", json_real_value(v));
    } else if (json_is_true(v) || json_is_false(v)) {
        cd_buf_append_str(b, json_is_true(v) ? "true" : "false");
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        /* a text starting like a formula is not run by spreadsheets: prefix a quote */
        bool formula = strchr("=+-@\t\r", s[0]) && s[0];
        cd_buf_append(b, "\"", 1);
        if (formula)
            cd_buf_append(b, "'", 1);
        for (; *s; s++) {
            if (*s == '"')
                cd_buf_append(b, "\"", 1);
            cd_buf_append(b, s, 1);
        }
        cd_buf_append(b, "\"", 1);
    } /* null: empty field */
}

/* The CSV of a reports reply body, or NULL if it has no columns/rows. Caller frees. */
static char *reports_csv(const char *body, size_t len, size_t *outlen)
{
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *cols = json_object_get(o, "columns"), *rows = json_object_get(o, "rows");
    if (!json_is_array(cols) || !json_is_array(rows)) {
        json_decref(o);
        return NULL;
    }
    cd_buf b;
    cd_buf_init(&b);
    size_t i, j;
    json_t *c, *r;
    json_array_foreach(cols, i, c)
    {
        if (i)
            cd_buf_append(&b, ",", 1);
        csv_field(&b, c);
    }
    cd_buf_append(&b, "\r\n", 2);
    json_array_foreach(rows, j, r)
    {
        json_array_foreach(cols, i, c)
        {
            if (i)
                cd_buf_append(&b, ",", 1);
            csv_field(&b, json_object_get(r, json_string_value(c)));
        }
        cd_buf_append(&b, "\r\n", 2);
    }
    json_decref(o);
    *outlen = b.len;
    char *out = cd_strndup(b.data ? b.data : "", b.len);
    cd_buf_cleanup(&b);
    return out;
}

int cd_http__api_csv_prepare(cd_api_op *a, const cd_api_call *call, const cd_api_route *r, json_t **params, char *err,
                             size_t errsz)
{
    (void)r;
    (void)params;
    (void)err;
    (void)errsz;
    for (size_t i = 0; i < call->nargs; i++)
        if (strcmp(call->args[i], "format=csv") == 0)
            a->csv = true;
    return 0;
}

bool cd_http__api_csv_reply(cd_api_op *a, const char *body, size_t len)
{
    size_t csvlen = 0;
    char *csv = a->csv ? reports_csv(body, len, &csvlen) : NULL;
    if (!csv)
        return false;
    a->cb(a->ud, 200, csv, csvlen, "text/csv; charset=utf-8");
    cd_free(csv);
    cd_http__api_op_free(a);
    return true;
}

const cd_api_family cd_http__api_reports = {
    "api_reports",          NULL,        report_routes, CD_ARRAY_LEN(report_routes), cd_http__api_csv_prepare, NULL,
    cd_http__api_csv_reply, CD_API_SITE,
};
