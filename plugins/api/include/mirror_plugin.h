/*
 * mirror_plugin.h: the C ABI between mirror and runtime plugins, version 1.
 *
 * A plugin is a shared library exporting one symbol, `mirror_plugin_entry`, that returns a table of
 * components (sources, transforms, sinks). Everything crossing the boundary is C: plain structs,
 * function pointers, UTF-8 NUL-terminated strings, and Arrow data through the Arrow C Data Interface.
 *
 * Ownership rules
 *  1. Whoever allocates, frees. Memory is only ever released by calling the `release` callback that
 *     travels with it (Arrow's rule, extended to MirrorBatch), so each side frees with its own
 *     allocator.
 *  2. Passing a MirrorBatch* to a function that "takes" it transfers ownership: the callee must,
 *     before returning, either release it or move it (copy the struct, then set the original's
 *     `release`, `schema.release` and `array.release` to NULL). A function that "fills" a batch
 *     writes a complete batch the caller then owns.
 *  3. Strings and byte ranges given as arguments (config, resume state, error buffers) are borrowed
 *     for the duration of the call only.
 *  4. Errors: every call returns a MirrorStatus. After MIRROR_TRANSIENT or MIRROR_PERMANENT, the host
 *     calls `last_error` to copy the message into its own buffer. Nothing may unwind (C++ exceptions,
 *     Rust panics) across the boundary: catch and return MIRROR_PERMANENT.
 *  5. One instance is used by one thread at a time; different instances may be used concurrently.
 *     A batch owns what it points to, and its release callbacks may be called from any thread.
 *
 * Versioning: MIRROR_PLUGIN_ABI_VERSION changes whenever any struct or rule here changes. The host
 * reads only `abi_version` before checking it, and refuses a library whose version it does not
 * implement. The symbol name never changes.
 */
#ifndef MIRROR_PLUGIN_H
#define MIRROR_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIRROR_PLUGIN_ABI_VERSION 1

/* ---- Arrow C Data Interface (https://arrow.apache.org/docs/format/CDataInterface.html) ---- */
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};
struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};
#endif

/* ---- Status codes ---- */
#define MIRROR_OK 0        /* success */
#define MIRROR_TRANSIENT 1 /* failed; retrying the same call may succeed */
#define MIRROR_PERMANENT 2 /* failed; the route stops */
#define MIRROR_END 3       /* a source has nothing more, ever */

/* ---- Component kinds ---- */
#define MIRROR_KIND_SOURCE 1
#define MIRROR_KIND_TRANSFORM 2
#define MIRROR_KIND_SINK 3

/* ---- Row operations (Open Mirroring row markers) ---- */
#define MIRROR_OP_INSERT 0
#define MIRROR_OP_UPDATE 1
#define MIRROR_OP_DELETE 2
#define MIRROR_OP_UPSERT 4

/* Whole rows of one table: a struct array (one child per column, no top-level nulls), one
 * operation per row, the table, its key columns, and for sources the checkpoint after this batch. */
typedef struct MirrorBatch {
    struct ArrowSchema schema;      /* format "+s", one child per column */
    struct ArrowArray array;        /* struct array, `length` rows */
    const uint8_t *ops;             /* array.length MIRROR_OP_* values */
    const char *table;              /* "<table>" or "<schema>.schema/<table>" */
    const char *const *key_columns; /* key_columns_len column names */
    size_t key_columns_len;
    const uint8_t *checkpoint;      /* sources: opaque state after this batch; else NULL */
    size_t checkpoint_len;
    void (*release)(struct MirrorBatch *); /* frees ops, table, key_columns, checkpoint; NULL when moved */
    void *private_data;
} MirrorBatch;

typedef struct MirrorComponentV1 {
    uint32_t kind;           /* MIRROR_KIND_* */
    const char *type_name;   /* the `type` in mirror.toml, e.g. "jsonl" */
    const char *description; /* one line */

    /* Creates an instance from the component's TOML table (without `type` and `inputs`) and, for
     * sources, the last committed checkpoint (NULL/0 on a first run). */
    int32_t (*create)(const uint8_t *config_toml, size_t config_len,
                      const uint8_t *resume, size_t resume_len, void **instance);
    /* Source: fills `out` with the next batch, or returns MIRROR_END. May block. */
    int32_t (*next)(void *instance, MirrorBatch *out);
    /* Transform: takes `*in_out` and fills it with the result (same number of rows or fewer,
     * operations aligned; the checkpoint fields are ignored). */
    int32_t (*apply)(void *instance, MirrorBatch *in_out);
    /* Sink: takes `batch`; `batch_id` is reported by take_acks once the rows are durable. */
    int32_t (*write)(void *instance, MirrorBatch *batch, uint64_t batch_id);
    /* Sink: makes every written batch durable. */
    int32_t (*flush)(void *instance);
    /* Sink: copies up to `capacity` ids of batches that became durable since the last call;
     * returns how many were copied (the host calls again while it gets `capacity`). */
    size_t (*take_acks)(void *instance, uint64_t *ids, size_t capacity);
    /* All kinds: finishes work (a sink flushes). Called once, before destroy. May be NULL. */
    int32_t (*close)(void *instance);
    /* All kinds: frees the instance. */
    void (*destroy)(void *instance);
    /* Copies the last error message (UTF-8, NUL-terminated, truncated to `capacity`) into `buf` and
     * returns its full length without the NUL. `instance` is NULL after a failed create; the host
     * then calls it on the same thread as the failed create. */
    size_t (*last_error)(void *instance, char *buf, size_t capacity);
} MirrorComponentV1;

typedef struct MirrorPluginV1 {
    uint32_t abi_version; /* MIRROR_PLUGIN_ABI_VERSION: read first, before anything else */
    uint32_t components_len;
    const MirrorComponentV1 *components;
} MirrorPluginV1;

/* The one exported symbol. Returns NULL if the plugin cannot work with the host's ABI version.
 * The returned table lives as long as the library is loaded. */
const MirrorPluginV1 *mirror_plugin_entry(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* MIRROR_PLUGIN_H */
