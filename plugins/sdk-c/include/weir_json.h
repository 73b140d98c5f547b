/* weir_json.h — a small JSON reader and a typed config reader for weir
 * plugins in C. Part of the weir C kit (plugins/sdk-c); plain C99, no
 * dependency on the generated bindings, so it builds natively for tests.
 *
 * Ownership: weir_json_parse returns a tree the caller frees with
 * weir_json_free (every string and array inside goes with it).
 * weir_config_parse returns a config the caller frees with weir_config_free;
 * every pointer a weir_config_* getter returns (strings, lists) points into
 * the config or at the default passed in, and stays valid until then. The kit
 * keeps the config passed to weir_plugin_init alive for the whole instance,
 * so a plugin may keep those pointers without copying.
 */
#ifndef WEIR_JSON_H
#define WEIR_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A list of NUL-terminated strings (not owned by the holder). */
typedef struct {
    const char *const *ptr;
    size_t len;
} weir_strs;

typedef enum {
    WEIR_JSON_NULL,
    WEIR_JSON_BOOL,
    WEIR_JSON_NUMBER,
    WEIR_JSON_STRING,
    WEIR_JSON_ARRAY,
    WEIR_JSON_OBJECT,
} weir_json_type;

typedef struct weir_json weir_json;

/* One JSON value. Which members mean something depends on `type`. */
struct weir_json {
    weir_json_type type;
    bool boolean;     /* WEIR_JSON_BOOL */
    double number;    /* WEIR_JSON_NUMBER */
    char *string;     /* WEIR_JSON_STRING: UTF-8, escapes decoded, NUL-terminated */
    size_t len;       /* WEIR_JSON_STRING: bytes, without the NUL */
    weir_json *items; /* WEIR_JSON_ARRAY elements, WEIR_JSON_OBJECT values */
    char **keys;      /* WEIR_JSON_OBJECT keys, `count` of them, in document order */
    size_t count;     /* elements (array) or members (object) */
};

/* Parses `len` bytes of JSON text (one value, surrounded by optional
 * whitespace; nesting at most 64 deep). Returns NULL on error and writes
 * "at byte N: what was expected" into `err` (if not NULL). */
weir_json *weir_json_parse(const char *text, size_t len, char *err, size_t errlen);
void weir_json_free(weir_json *value);

/* The member `key` of an object (the last one if repeated), or NULL. */
const weir_json *weir_json_get(const weir_json *object, const char *key);
/* "null", "bool", "number", "string", "list", "table". */
const char *weir_json_type_name(weir_json_type type);

/* ---- typed config: the plugin's table from weir's config, as JSON ------- */

typedef struct weir_config weir_config;

/* Parses the config text (empty text means `{}`). Never NULL unless out of
 * memory; a parse error or a non-object is recorded and shows up in
 * weir_config_error. */
weir_config *weir_config_parse(const char *text, size_t len);
void weir_config_free(weir_config *config);

/* Getters: the value of `key`, or `def` when the key is not given. A value of
 * the wrong type records an error naming the key ("to: expected string, got
 * number") and returns `def`. Each getter also marks the key as known. */
const char *weir_config_str(weir_config *config, const char *key, const char *def);
double weir_config_number(weir_config *config, const char *key, double def);
/* A number without a fractional part, within int64. */
int64_t weir_config_int(weir_config *config, const char *key, int64_t def);
bool weir_config_bool(weir_config *config, const char *key, bool def);
/* A list of strings; `def` is returned as given (not copied). */
weir_strs weir_config_strs(weir_config *config, const char *key, weir_strs def);
/* Any value (NULL when not given), for tables and mixed lists. */
const weir_json *weir_config_json(weir_config *config, const char *key);

/* Records an error of the plugin's own (printf-style; the first one wins) and
 * returns -1, so `return weir_config_fail(cfg, "...")` ends weir_plugin_init. */
int weir_config_fail(weir_config *config, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The first error recorded, else the first key no getter asked for
 * ("colour: unknown key; expected one of drop_names, from, to"), else NULL.
 * The text is owned by the config. */
const char *weir_config_error(weir_config *config);

#ifdef __cplusplus
}
#endif

#endif
