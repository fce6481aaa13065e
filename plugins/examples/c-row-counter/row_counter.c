/*
 * Example plugin in C: a sink counting rows per table and operation.
 *
 *   [sinks.counts]
 *   type = "c_row_counter"
 *   inputs = ["gen"]
 *   path = "counts.txt"
 *
 * On every flush it rewrites `path` with one line per table: "<table> <rows> <deletes>", fsyncs it,
 * and reports every written batch as durable. It shows the C side of the ABI: taking ownership of a
 * MirrorBatch, reading the Arrow struct array's length, releasing everything with the producer's
 * release callbacks, and keeping the last error for the host.
 *
 * Build: cc -shared -fPIC -O2 -I plugins/api/include -o librow_counter.so row_counter.c
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror_plugin.h"

#define MAX_TABLES 64
#define MAX_PENDING 4096

typedef struct {
    char table[256];
    unsigned long long rows;
    unsigned long long deletes;
} Count;

typedef struct {
    char path[1024];
    Count counts[MAX_TABLES];
    int n_counts;
    uint64_t written[MAX_PENDING];
    size_t n_written;
    uint64_t durable[MAX_PENDING];
    size_t n_durable;
    char error[512];
} Counter;

static _Thread_local char create_error[512];

/* Finds `key = "value"` in a TOML table's text (enough for this example's one setting). */
static int toml_string(const char *text, size_t len, const char *key, char *out, size_t cap) {
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen < len; i++) {
        if ((i == 0 || text[i - 1] == '\n') && strncmp(text + i, key, klen) == 0) {
            const char *p = text + i + klen;
            const char *end = text + len;
            while (p < end && (*p == ' ' || *p == '=')) p++;
            if (p >= end || *p != '"') return 0;
            p++;
            size_t n = 0;
            while (p < end && *p != '"' && n + 1 < cap) out[n++] = *p++;
            out[n] = 0;
            return 1;
        }
    }
    return 0;
}

static int32_t create(const uint8_t *config, size_t config_len, const uint8_t *resume, size_t resume_len,
                      void **instance) {
    (void)resume;
    (void)resume_len;
    Counter *c = calloc(1, sizeof(Counter));
    if (!c) {
        snprintf(create_error, sizeof create_error, "out of memory");
        return MIRROR_PERMANENT;
    }
    if (!toml_string((const char *)config, config_len, "path", c->path, sizeof c->path)) {
        snprintf(create_error, sizeof create_error, "missing setting `path = \"...\"`");
        free(c);
        return MIRROR_PERMANENT;
    }
    *instance = c;
    return MIRROR_OK;
}

static int32_t fail(Counter *c, int32_t status, const char *message) {
    snprintf(c->error, sizeof c->error, "%s", message);
    return status;
}

static int32_t write_batch(void *instance, MirrorBatch *batch, uint64_t batch_id) {
    Counter *c = instance;
    /* Take ownership: copy the struct and mark the caller's copy as moved. */
    MirrorBatch mine = *batch;
    batch->release = NULL;
    batch->schema.release = NULL;
    batch->array.release = NULL;

    int32_t status = MIRROR_OK;
    if (c->n_written == MAX_PENDING) {
        status = fail(c, MIRROR_TRANSIENT, "too many unflushed batches");
        goto done;
    }
    Count *slot = NULL;
    for (int i = 0; i < c->n_counts; i++)
        if (strcmp(c->counts[i].table, mine.table) == 0) slot = &c->counts[i];
    if (!slot) {
        if (c->n_counts == MAX_TABLES) {
            status = fail(c, MIRROR_PERMANENT, "more than 64 tables");
            goto done;
        }
        slot = &c->counts[c->n_counts++];
        snprintf(slot->table, sizeof slot->table, "%s", mine.table);
    }
    slot->rows += (unsigned long long)mine.array.length;
    for (int64_t i = 0; i < mine.array.length; i++)
        if (mine.ops[i] == MIRROR_OP_DELETE) slot->deletes++;
    c->written[c->n_written++] = batch_id;

done:
    /* Release with the producer's callbacks: the host frees what the host allocated. */
    if (mine.array.release) mine.array.release(&mine.array);
    if (mine.schema.release) mine.schema.release(&mine.schema);
    if (mine.release) mine.release(&mine);
    return status;
}

static int32_t flush(void *instance) {
    Counter *c = instance;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->path);
    FILE *f = fopen(tmp, "w");
    if (!f) return fail(c, MIRROR_TRANSIENT, "cannot open the counts file");
    for (int i = 0; i < c->n_counts; i++)
        fprintf(f, "%s %llu %llu\n", c->counts[i].table, c->counts[i].rows, c->counts[i].deletes);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return fail(c, MIRROR_TRANSIENT, "cannot write the counts file");
    }
    fclose(f);
    if (rename(tmp, c->path) != 0) return fail(c, MIRROR_TRANSIENT, "cannot replace the counts file");
    for (size_t i = 0; i < c->n_written && c->n_durable < MAX_PENDING; i++) c->durable[c->n_durable++] = c->written[i];
    c->n_written = 0;
    return MIRROR_OK;
}

static size_t take_acks(void *instance, uint64_t *ids, size_t capacity) {
    Counter *c = instance;
    size_t n = c->n_durable < capacity ? c->n_durable : capacity;
    memcpy(ids, c->durable, n * sizeof(uint64_t));
    memmove(c->durable, c->durable + n, (c->n_durable - n) * sizeof(uint64_t));
    c->n_durable -= n;
    return n;
}

static int32_t close_counter(void *instance) { return flush(instance); }

static void destroy(void *instance) { free(instance); }

static size_t last_error(void *instance, char *buf, size_t capacity) {
    const char *message = instance ? ((Counter *)instance)->error : create_error;
    size_t len = strlen(message);
    if (buf && capacity > 0) {
        size_t n = len < capacity - 1 ? len : capacity - 1;
        memcpy(buf, message, n);
        buf[n] = 0;
    }
    return len;
}

static const MirrorComponentV1 components[] = {{
    .kind = MIRROR_KIND_SINK,
    .type_name = "c_row_counter",
    .description = "counts rows per table (example plugin written in C)",
    .create = create,
    .next = NULL,
    .apply = NULL,
    .write = write_batch,
    .flush = flush,
    .take_acks = take_acks,
    .close = close_counter,
    .destroy = destroy,
    .last_error = last_error,
}};

static const MirrorPluginV1 plugin = {
    .abi_version = MIRROR_PLUGIN_ABI_VERSION,
    .components_len = 1,
    .components = components,
};

const MirrorPluginV1 *mirror_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == MIRROR_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
