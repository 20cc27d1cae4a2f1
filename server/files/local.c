/* The local files directory: "<files_dir>/<site>/<id>". Every file operation runs on the
 * libuv thread pool (uv_fs_* with a callback), never on the loop (ARCHITECTURE 1). A body
 * is written to "<id>.part" one chunk at a time (the caller holds its reads while a chunk
 * is in flight, so at most one chunk of at most 64 KB is buffered per upload) and renamed
 * to "<id>" once complete, so a reader never sees half a file and a node killed mid-upload
 * leaves only a ".part" that no record names.
 *
 * Several nodes must see the same directory (a shared volume: NFS, EFS, a bind mount in
 * docker/): a file uploaded through one node is downloaded through any. */
#include "chatdesk/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#define WRITER_CHUNK_MAX (64 * 1024)

enum w_step { W_MKDIR_TOP, W_MKDIR_SITE, W_OPEN, W_WRITE, W_CLOSE, W_RENAME, W_IDLE };

struct cd_files_writer {
    uv_fs_t req;
    uv_loop_t *loop;
    char dir[512];
    char path[768];
    char part[776];
    uv_file fd;
    enum w_step step;
    bool busy, freed, failed, done;
    char *chunk;
    size_t chunk_len;
    cd_files_io_cb cb;
    void *ud;
};

static bool plain_name(const char *s)
{
    if (!s || !s[0] || s[0] == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return false;
    return true;
}

int cd_files_path(const char *dir, const char *site, const char *id, char *out, size_t outsz)
{
    if (!plain_name(site) || !plain_name(id) || strstr(id, ".."))
        return -1;
    int n = snprintf(out, outsz, "%s/%s/%s", dir, site, id);
    return n > 0 && (size_t)n < outsz ? 0 : -1;
}

static void on_cleanup(uv_fs_t *req);

/* A freed writer with nothing in flight: its descriptor is closed and an unfinished body
 * removed (one step at a time, each on the thread pool), then the memory goes. */
static void finish_freed(cd_files_writer *w)
{
    w->req.data = w;
    if (w->fd >= 0) {
        uv_file fd = w->fd;
        w->fd = -1;
        if (uv_fs_close(w->loop, &w->req, fd, on_cleanup) == 0)
            return;
    }
    if (!w->done && w->part[0]) {
        w->done = true; /* unlinked once */
        if (uv_fs_unlink(w->loop, &w->req, w->part, on_cleanup) == 0)
            return;
    }
    cd_free(w->chunk);
    cd_free(w);
}

static void on_cleanup(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    finish_freed(req->data);
}

static void on_fs(uv_fs_t *req);

static int start_step(cd_files_writer *w)
{
    w->req.data = w;
    switch (w->step) {
    case W_MKDIR_TOP:
        return uv_fs_mkdir(w->loop, &w->req, w->dir, 0750, on_fs);
    case W_MKDIR_SITE: {
        char site_dir[768];
        cd_strlcpy(site_dir, w->path, sizeof site_dir);
        char *slash = strrchr(site_dir, '/');
        if (slash)
            *slash = '\0';
        return uv_fs_mkdir(w->loop, &w->req, site_dir, 0750, on_fs);
    }
    case W_OPEN:
        return uv_fs_open(w->loop, &w->req, w->part, O_WRONLY | O_CREAT | O_TRUNC, 0640, on_fs);
    case W_WRITE: {
        uv_buf_t b = uv_buf_init(w->chunk, (unsigned int)w->chunk_len);
        return uv_fs_write(w->loop, &w->req, w->fd, &b, 1, -1, on_fs);
    }
    case W_CLOSE:
        return uv_fs_close(w->loop, &w->req, w->fd, on_fs);
    case W_RENAME:
        return uv_fs_rename(w->loop, &w->req, w->part, w->path, on_fs);
    case W_IDLE:
        break;
    }
    return -1;
}

/* One operation ended. The chain open (mkdir, mkdir, open) and the chain finish (close,
 * rename) each end in the caller's callback; a write ends in it at once. */
static void on_fs(uv_fs_t *req)
{
    cd_files_writer *w = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (w->freed) {
        if (w->step == W_OPEN && r >= 0)
            w->fd = (uv_file)r;
        if (w->step == W_CLOSE)
            w->fd = -1;
        if (w->step == W_RENAME && r == 0)
            w->done = true; /* complete: keep it (its record decides) */
        finish_freed(w);
        return;
    }
    int status = 0;
    switch (w->step) {
    case W_MKDIR_TOP:
    case W_MKDIR_SITE:
        if (r < 0 && r != UV_EEXIST) {
            status = (int)r;
            break;
        }
        w->step = w->step == W_MKDIR_TOP ? W_MKDIR_SITE : W_OPEN;
        if (start_step(w) != 0)
            status = UV_EIO;
        else
            return;
        break;
    case W_OPEN:
        if (r < 0)
            status = (int)r;
        else
            w->fd = (uv_file)r;
        break;
    case W_WRITE:
        if (r < 0 || (size_t)r != w->chunk_len)
            status = r < 0 ? (int)r : UV_EIO;
        break;
    case W_CLOSE:
        w->fd = -1;
        if (r < 0) {
            status = (int)r;
            break;
        }
        w->step = W_RENAME;
        if (start_step(w) != 0)
            status = UV_EIO;
        else
            return;
        break;
    case W_RENAME:
        if (r < 0)
            status = (int)r;
        else
            w->done = true;
        break;
    case W_IDLE:
        break;
    }
    w->step = W_IDLE;
    w->busy = false;
    if (status != 0)
        w->failed = true;
    cd_files_io_cb cb = w->cb;
    w->cb = NULL;
    if (cb)
        cb(w->ud, status);
}

cd_files_writer *cd_files_writer_open(uv_loop_t *loop, const char *dir, const char *site, const char *id,
                                      cd_files_io_cb cb, void *ud)
{
    cd_files_writer *w = cd_calloc(1, sizeof *w);
    w->loop = loop;
    w->fd = -1;
    cd_strlcpy(w->dir, dir, sizeof w->dir);
    int n = 0;
    if (cd_files_path(dir, site, id, w->path, sizeof w->path) != 0 ||
        (n = snprintf(w->part, sizeof w->part, "%s.part", w->path)) <= 0 || (size_t)n >= sizeof w->part) {
        cd_free(w);
        return NULL;
    }
    w->step = W_MKDIR_TOP;
    w->busy = true;
    w->cb = cb;
    w->ud = ud;
    if (start_step(w) != 0) {
        cd_free(w);
        return NULL;
    }
    return w;
}

/* Starts step (a write or the finish) with its callback; -1 when it cannot. */
static int begin(cd_files_writer *w, enum w_step step, cd_files_io_cb cb, void *ud)
{
    w->step = step;
    w->busy = true;
    w->cb = cb;
    w->ud = ud;
    if (start_step(w) != 0) {
        w->busy = false;
        w->failed = true;
        return -1;
    }
    return 0;
}

int cd_files_writer_write(cd_files_writer *w, const void *p, size_t n, cd_files_io_cb cb, void *ud)
{
    if (w->busy || w->failed || w->fd < 0 || n == 0 || n > WRITER_CHUNK_MAX)
        return -1;
    w->chunk = cd_realloc(w->chunk, n);
    memcpy(w->chunk, p, n);
    w->chunk_len = n;
    return begin(w, W_WRITE, cb, ud);
}

int cd_files_writer_finish(cd_files_writer *w, cd_files_io_cb cb, void *ud)
{
    if (w->busy || w->failed || w->fd < 0)
        return -1;
    return begin(w, W_CLOSE, cb, ud);
}

void cd_files_writer_free(cd_files_writer *w)
{
    if (!w)
        return;
    w->freed = true;
    w->cb = NULL;
    if (!w->busy)
        finish_freed(w);
}

static void on_removed(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    cd_free(req);
}

void cd_files_remove(uv_loop_t *loop, const char *dir, const char *site, const char *id)
{
    char path[768];
    if (cd_files_path(dir, site, id, path, sizeof path) != 0)
        return;
    uv_fs_t *req = cd_calloc(1, sizeof *req);
    if (uv_fs_unlink(loop, req, path, on_removed) != 0)
        cd_free(req);
}
