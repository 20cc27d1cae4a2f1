/* The session family's outbound frames (docs/protocol.md): welcome for a visitor and for
 * an agent, resumed, the error of one resume entry, conversation.assigned. They are
 * written here, beside the message family's in encode.c, so the session never spells a
 * frame itself. raw_* arguments are trusted, already-encoded JSON made by the server
 * (Redis replies), copied verbatim; NULL arrays are written as []. */
#include "chatdesk/proto.h"

#include <string.h>

static void rid_field(cd_frame *f, const char *rid)
{
    if (rid) {
        cd_frame_append_str(f, ",\"rid\":");
        cd_frame_append_json_str(f, rid);
    }
}

static void raw_field(cd_frame *f, const char *key, const char *raw, const char *dflt)
{
    cd_frame_append_str(f, key);
    cd_frame_append_str(f, raw ? raw : dflt);
}

cd_frame *cd_proto_encode_welcome_visitor(const cd_proto_welcome_visitor *w)
{
    cd_frame *f = cd_frame_create(512);
    cd_frame_append_str(f, "{\"type\":\"welcome\"");
    rid_field(f, w->rid);
    raw_field(f, ",\"visitor\":", w->raw_visitor, "null");
    cd_frame_append_str(f, ",\"token\":");
    cd_frame_append_json_str(f, w->token);
    raw_field(f, ",\"conversations\":", w->raw_conversations, "[]");
    if (w->raw_site_config)
        raw_field(f, ",\"site\":", w->raw_site_config, "null");
    cd_frame_append_str(f, w->agents_online ? ",\"agents_online\":true}" : ",\"agents_online\":false}");
    return f;
}

cd_frame *cd_proto_encode_welcome_agent(const char *rid, const char *raw_agent, const char *raw_conversations,
                                        const char *raw_queue)
{
    cd_frame *f = cd_frame_create(512);
    cd_frame_append_str(f, "{\"type\":\"welcome\"");
    rid_field(f, rid);
    raw_field(f, ",\"agent\":", raw_agent, "null");
    raw_field(f, ",\"conversations\":", raw_conversations, "[]");
    raw_field(f, ",\"queue\":", raw_queue, "[]");
    cd_frame_append_str(f, "}");
    return f;
}

cd_frame *cd_proto_encode_resumed(const char *cid, int64_t last_seq, const char *epoch, bool recovered)
{
    cd_frame *f = cd_frame_create(160);
    cd_frame_append_str(f, "{\"type\":\"resumed\",\"conversation_id\":");
    cd_frame_append_json_str(f, cid);
    cd_frame_append_str(f, ",\"last_seq\":");
    cd_frame_append_int(f, last_seq);
    cd_frame_append_str(f, ",\"epoch\":");
    cd_frame_append_json_str(f, epoch);
    cd_frame_append_str(f, recovered ? ",\"recovered\":true}" : ",\"recovered\":false}");
    return f;
}

cd_frame *cd_proto_encode_entry_error(const char *cid, cd_err code, const char *message)
{
    cd_frame *f = cd_proto_encode_error(NULL, code, message);
    f->len--; /* drop the closing brace */
    cd_frame_append_str(f, ",\"conversation_id\":");
    cd_frame_append_json_str(f, cid);
    cd_frame_append_str(f, "}");
    return f;
}

cd_frame *cd_proto_encode_assigned(const char *raw_conversation)
{
    cd_frame *f = cd_frame_create(strlen(raw_conversation) + 48);
    cd_frame_append_str(f, "{\"type\":\"conversation.assigned\",\"conversation\":");
    cd_frame_append_str(f, raw_conversation);
    cd_frame_append_str(f, "}");
    return f;
}
