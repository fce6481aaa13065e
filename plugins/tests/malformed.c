/*
 * Test plugin in C: a source whose batches break the rules in a chosen way, and builds of the
 * library that break the loading rules. Used by core/tests/plugins.rs.
 *
 *   kind = "valid" | "wrong_buffers" | "bad_format" | "short_child" | "bad_op" | "null_table"
 *
 * Compile-time variants: -DWRONG_ABI (reports ABI version 99), -DNO_ENTRY (exports no entry point).
 */
#include <stdlib.h>
#include <string.h>

#include "mirror_plugin.h"

typedef struct {
    char kind[32];
    int emitted;
} Source;

/* One allocation owns everything a batch points to; each release frees its own part. */
typedef struct {
    int64_t values[4];
    const void *child_buffers[2];
    const void *struct_buffers[1];
    struct ArrowArray child;
    struct ArrowArray *children[1];
    struct ArrowSchema child_schema;
    struct ArrowSchema *schema_children[1];
    uint8_t ops[4];
    const char *keys[1];
    int refs;
} Owned;

static void unref(Owned *o) {
    if (--o->refs == 0) free(o);
}
static void release_child_array(struct ArrowArray *a) { a->release = NULL; }
static void release_array(struct ArrowArray *a) {
    a->release = NULL;
    unref(a->private_data);
}
static void release_child_schema(struct ArrowSchema *s) { s->release = NULL; }
static void release_schema(struct ArrowSchema *s) {
    s->release = NULL;
    unref(s->private_data);
}
static void release_batch(MirrorBatch *b) {
    b->release = NULL;
    unref(b->private_data);
}

static int32_t create(const uint8_t *config, size_t len, const uint8_t *resume, size_t resume_len, void **out) {
    (void)resume;
    (void)resume_len;
    Source *s = calloc(1, sizeof(Source));
    strcpy(s->kind, "valid");
    const char *text = (const char *)config;
    const char *kinds[] = {"wrong_buffers", "bad_format", "short_child", "bad_op", "null_table"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t i = 0; i + strlen(kinds[k]) <= len; i++)
            if (memcmp(text + i, kinds[k], strlen(kinds[k])) == 0) strcpy(s->kind, kinds[k]);
    *out = s;
    return MIRROR_OK;
}

static int32_t next(void *instance, MirrorBatch *out) {
    Source *s = instance;
    if (s->emitted++ > 0) return MIRROR_END;
    Owned *o = calloc(1, sizeof(Owned));
    o->refs = 3;
    for (int i = 0; i < 4; i++) {
        o->values[i] = i + 1;
        o->ops[i] = MIRROR_OP_UPSERT;
    }
    o->child_buffers[0] = NULL;
    o->child_buffers[1] = o->values;
    o->child = (struct ArrowArray){.length = 4, .null_count = 0, .offset = 0, .n_buffers = 2, .n_children = 0,
                                   .buffers = o->child_buffers, .release = release_child_array};
    o->children[0] = &o->child;
    o->struct_buffers[0] = NULL;
    o->child_schema = (struct ArrowSchema){.format = "l", .name = "seq", .flags = ARROW_FLAG_NULLABLE,
                                           .release = release_child_schema};
    o->schema_children[0] = &o->child_schema;
    o->keys[0] = "seq";

    out->array = (struct ArrowArray){.length = 4, .null_count = 0, .offset = 0, .n_buffers = 1, .n_children = 1,
                                     .buffers = o->struct_buffers, .children = o->children,
                                     .release = release_array, .private_data = o};
    out->schema = (struct ArrowSchema){.format = "+s", .name = "", .n_children = 1, .children = o->schema_children,
                                       .release = release_schema, .private_data = o};
    out->ops = o->ops;
    out->table = "numbers";
    out->key_columns = o->keys;
    out->key_columns_len = 1;
    out->checkpoint = NULL;
    out->checkpoint_len = 0;
    out->release = release_batch;
    out->private_data = o;

    if (strcmp(s->kind, "wrong_buffers") == 0) o->child.n_buffers = 1;
    if (strcmp(s->kind, "bad_format") == 0) o->child_schema.format = "Q";
    if (strcmp(s->kind, "short_child") == 0) o->child.length = 2;
    if (strcmp(s->kind, "bad_op") == 0) o->ops[2] = 7;
    if (strcmp(s->kind, "null_table") == 0) out->table = NULL;
    return MIRROR_OK;
}

static void destroy(void *instance) { free(instance); }

static size_t last_error(void *instance, char *buf, size_t capacity) {
    (void)instance;
    if (buf && capacity) buf[0] = 0;
    return 0;
}

static const MirrorComponentV1 components[] = {{
    .kind = MIRROR_KIND_SOURCE,
    .type_name = "c_malformed",
    .description = "emits malformed batches (tests)",
    .create = create,
    .next = next,
    .destroy = destroy,
    .last_error = last_error,
}};

#ifdef WRONG_ABI
#define REPORTED_ABI 99
#else
#define REPORTED_ABI MIRROR_PLUGIN_ABI_VERSION
#endif

static const MirrorPluginV1 plugin = {
    .abi_version = REPORTED_ABI,
    .components_len = 1,
    .components = components,
};

#ifndef NO_ENTRY
const MirrorPluginV1 *mirror_plugin_entry(uint32_t host_abi_version) {
    (void)host_abi_version;
    return &plugin;
}
#else
const MirrorPluginV1 *not_the_entry_point(void) { return &plugin; }
#endif
