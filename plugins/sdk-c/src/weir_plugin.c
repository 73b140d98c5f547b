/* The kit's hand-written layer over the generated bindings: the exports, the
 * per-call arena, column decoding and the edit queue. The ownership rules are
 * in include/weir_plugin.h. */

#include "weir_plugin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef weir_plugin_types_borrow_batch_t handle_t;

/* ---- the arena ------------------------------------------------------------ */

#define CHUNK 16384

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    /* data follows, 8-byte aligned */
} chunk;

/* A host list the call received: freed with its generated *_free helper. */
typedef enum { HOST_U32S, HOST_BYTES, HOST_COLUMN, HOST_TABLE, HOST_STRING, HOST_CHANGE_ERROR } host_kind;

typedef struct {
    host_kind kind;
    union {
        plugin_list_u32_t u32s;
        plugin_list_u8_t bytes;
        weir_plugin_types_column_t column;
        weir_plugin_types_attribute_table_t table;
        plugin_string_t string;
        weir_plugin_types_change_error_t change_error;
    } as;
} host_list;

/* A growable array in malloc'd memory (freed at the end of the call). */
typedef struct {
    void *ptr;
    size_t len, cap;
} vec;

struct weir_batch {
    handle_t handle;
    uint64_t sequence;
    chunk *chunks;
    vec host;   /* host_list */
    vec edits;  /* weir_plugin_types_edit_t */
    vec drops;  /* uint32_t */
    vec routes; /* route */
    char *error;
};

typedef struct {
    char *name;
    weir_u32s items;
} route;

static void out_of_memory(void) {
    fputs("weir plugin: out of memory\n", stderr);
    abort();
}

static void *vec_push(vec *v, size_t size) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void *grown = realloc(v->ptr, cap * size);
        if (!grown) out_of_memory();
        v->ptr = grown;
        v->cap = cap;
    }
    return (char *)v->ptr + size * v->len++;
}

void *weir_alloc(weir_batch *b, size_t size) {
    size = (size + 7) & ~(size_t)7;
    chunk *c = b->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > CHUNK ? size : CHUNK;
        c = malloc(sizeof(chunk) + 8 + cap);
        if (!c) out_of_memory();
        c->cap = cap;
        c->used = 0;
        c->next = b->chunks;
        b->chunks = c;
    }
    /* data starts at the first 8-byte boundary after the header */
    char *base = (char *)(((uintptr_t)(c + 1) + 7) & ~(uintptr_t)7);
    void *p = base + c->used;
    c->used += size;
    return p;
}

static char *arena_copy(weir_batch *b, const void *s, size_t len) {
    char *out = weir_alloc(b, len + 1);
    if (len) memcpy(out, s, len);
    out[len] = 0;
    return out;
}

char *weir_strdup(weir_batch *b, const char *s) {
    return arena_copy(b, s, strlen(s));
}

static char *vformat(weir_batch *b, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    char small[256];
    if (!fmt) fmt = "";
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) n = 0;
    char *out = weir_alloc(b, (size_t)n + 1);
    if ((size_t)n < sizeof small) memcpy(out, small, (size_t)n + 1);
    else vsnprintf(out, (size_t)n + 1, fmt, again);
    va_end(again);
    return out;
}

char *weir_sprintf(weir_batch *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *out = vformat(b, fmt, ap);
    va_end(ap);
    return out;
}

int weir_fail(weir_batch *b, const char *fmt, ...) {
    if (!b->error) {
        va_list ap;
        va_start(ap, fmt);
        b->error = vformat(b, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static host_list *keep(weir_batch *b, host_kind kind) {
    host_list *h = vec_push(&b->host, sizeof(host_list));
    h->kind = kind;
    return h;
}

/* Frees everything the call allocated: host lists, queues, arena chunks. */
static void arena_free(weir_batch *b) {
    host_list *h = b->host.ptr;
    for (size_t i = 0; i < b->host.len; i++) {
        switch (h[i].kind) {
        case HOST_U32S: plugin_list_u32_free(&h[i].as.u32s); break;
        case HOST_BYTES: plugin_list_u8_free(&h[i].as.bytes); break;
        case HOST_COLUMN: weir_plugin_types_column_free(&h[i].as.column); break;
        case HOST_TABLE: weir_plugin_types_attribute_table_free(&h[i].as.table); break;
        case HOST_STRING: plugin_string_free(&h[i].as.string); break;
        case HOST_CHANGE_ERROR: weir_plugin_types_change_error_free(&h[i].as.change_error); break;
        }
    }
    free(b->host.ptr);
    free(b->edits.ptr);
    free(b->drops.ptr);
    free(b->routes.ptr);
    for (chunk *c = b->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    b->chunks = NULL;
}

/* ---- decoding ------------------------------------------------------------- */

static uint64_t le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
    return v;
}

/* A tagged value (see "Values inside columns" in the WIT). */
static weir_value decode_tagged(weir_batch *b, const uint8_t *p, size_t n) {
    weir_value v = {WEIR_ABSENT, NULL, 0, 0, 0, false};
    if (n == 0) return v;
    const uint8_t *rest = p + 1;
    size_t len = n - 1;
    switch (p[0]) {
    case WEIR_STR:
    case WEIR_JSON:
    case WEIR_BYTES:
        v.kind = (weir_kind)p[0];
        v.str = arena_copy(b, rest, len);
        v.len = len;
        break;
    case WEIR_INT:
        if (len == 8) {
            v.kind = WEIR_INT;
            v.i = (int64_t)le(rest, 8);
        }
        break;
    case WEIR_DOUBLE:
        if (len == 8) {
            uint64_t bits = le(rest, 8);
            v.kind = WEIR_DOUBLE;
            memcpy(&v.d, &bits, sizeof v.d);
        }
        break;
    case WEIR_BOOL:
        if (len == 1) {
            v.kind = WEIR_BOOL;
            v.b = rest[0] != 0;
        }
        break;
    default: break;
    }
    return v;
}

static bool text_field(weir_field f) {
    switch (f) {
    case WEIR_FIELD_NAME:
    case WEIR_FIELD_STATUS_MESSAGE:
    case WEIR_FIELD_TRACE_STATE:
    case WEIR_FIELD_SEVERITY_TEXT:
    case WEIR_FIELD_EVENT_NAME:
    case WEIR_FIELD_UNIT:
    case WEIR_FIELD_DESCRIPTION: return true;
    default: return false;
    }
}

static bool id_field(weir_field f) {
    return f == WEIR_FIELD_TRACE_ID || f == WEIR_FIELD_SPAN_ID || f == WEIR_FIELD_PARENT_SPAN_ID;
}

/* A plain (untagged) field entry. */
static weir_value decode_plain(weir_batch *b, weir_field f, const uint8_t *p, size_t n) {
    weir_value v = {WEIR_ABSENT, NULL, 0, 0, 0, false};
    if (f == WEIR_FIELD_BODY) return decode_tagged(b, p, n);
    if (text_field(f)) {
        v.kind = WEIR_STR;
        v.str = arena_copy(b, p, n);
        v.len = n;
    } else if (n == 0) {
        return v;
    } else if (id_field(f)) {
        v.kind = WEIR_BYTES;
        v.str = arena_copy(b, p, n);
        v.len = n;
    } else if (n == 4) {
        uint32_t u = (uint32_t)le(p, 4);
        v.kind = WEIR_INT;
        /* kind, status code and severity number are signed; flags are not */
        v.i = f == WEIR_FIELD_FLAGS ? (int64_t)u : (int64_t)(int32_t)u;
    } else if (n == 8) {
        v.kind = WEIR_INT;
        v.i = (int64_t)le(p, 8);
    }
    return v;
}

static weir_plugin_types_column_t *take_column(weir_batch *b, weir_plugin_types_column_t col) {
    host_list *h = keep(b, HOST_COLUMN);
    h->as.column = col;
    return &h->as.column;
}

static size_t entries(const weir_plugin_types_column_t *c) {
    return c->offsets.len ? c->offsets.len - 1 : 0;
}

/* data + offset, without forming NULL + 0 (empty lists may have no storage). */
static const uint8_t *at(const uint8_t *data, uint32_t offset) {
    return data ? data + offset : NULL;
}

static weir_values decode_column(weir_batch *b, weir_plugin_types_column_t col, bool tagged, weir_field f) {
    take_column(b, col);
    size_t n = entries(&col);
    weir_value *out = weir_alloc(b, (n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        uint32_t s = col.offsets.ptr[i], e = col.offsets.ptr[i + 1];
        if (e < s || e > col.data.len) e = s; /* a malformed entry reads as absent */
        out[i] = tagged ? decode_tagged(b, at(col.data.ptr, s), e - s) : decode_plain(b, f, at(col.data.ptr, s), e - s);
    }
    return (weir_values){out, n};
}

static weir_strs texts(weir_batch *b, weir_values vals) {
    const char **out = weir_alloc(b, (vals.len ? vals.len : 1) * sizeof *out);
    for (size_t i = 0; i < vals.len; i++) out[i] = weir_value_text(b, &vals.ptr[i]);
    return (weir_strs){out, vals.len};
}

size_t weir_format_double(char *out, size_t cap, double d) {
    if (d != d) return (size_t)snprintf(out, cap, "NaN");
    if (d > 1.7976931348623157e308 || d < -1.7976931348623157e308) return (size_t)snprintf(out, cap, d < 0 ? "-inf" : "inf");
    char e[40];
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, d);
        if (strtod(e, NULL) == d) break;
    }
    /* e is [-]D[.DDD]e(+|-)XX: collect the digits and the exponent */
    const char *p = e;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[24];
    size_t k = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0') k--;
    int x = atoi(p + 1);
    char plain[400];
    size_t n = 0;
    if (neg) plain[n++] = '-';
    if (x >= 0) {
        for (size_t i = 0; i < k || (int)i <= x; i++) {
            if ((int)i == x + 1) plain[n++] = '.';
            plain[n++] = i < k ? digits[i] : '0';
        }
    } else {
        plain[n++] = '0';
        plain[n++] = '.';
        for (int i = -1; i > x; i--) plain[n++] = '0';
        for (size_t i = 0; i < k; i++) plain[n++] = digits[i];
    }
    plain[n] = 0;
    return (size_t)snprintf(out, cap, "%s", plain);
}

const char *weir_value_text(weir_batch *b, const weir_value *v) {
    switch (v->kind) {
    case WEIR_STR:
    case WEIR_JSON: return v->str;
    case WEIR_INT: return weir_sprintf(b, "%lld", (long long)v->i);
    case WEIR_BOOL: return v->b ? "true" : "false";
    case WEIR_DOUBLE: {
        char buf[400];
        weir_format_double(buf, sizeof buf, v->d);
        return weir_strdup(b, buf);
    }
    default: return NULL;
    }
}

/* ---- reads ---------------------------------------------------------------- */

static plugin_string_t borrow_str(const char *s) {
    return (plugin_string_t){(uint8_t *)s, strlen(s)};
}

static weir_u32s take_u32s(weir_batch *b, plugin_list_u32_t list) {
    host_list *h = keep(b, HOST_U32S);
    h->as.u32s = list;
    return (weir_u32s){list.len ? list.ptr : NULL, list.len};
}

weir_signal weir_batch_signal(weir_batch *b) {
    return weir_plugin_types_method_batch_signal(b->handle);
}

uint64_t weir_batch_sequence(weir_batch *b) {
    return b->sequence;
}

uint32_t weir_batch_len(weir_batch *b) {
    return weir_plugin_types_method_batch_len(b->handle);
}

uint32_t weir_count(weir_batch *b, weir_level level) {
    return weir_plugin_types_method_batch_count(b->handle, level);
}

weir_u32s weir_owners(weir_batch *b, weir_level level) {
    plugin_list_u32_t list;
    weir_plugin_types_method_batch_owners(b->handle, level, &list);
    return take_u32s(b, list);
}

weir_u32s weir_ancestors(weir_batch *b, weir_level level, weir_level of) {
    plugin_list_u32_t list;
    weir_plugin_types_method_batch_ancestors(b->handle, level, of, &list);
    return take_u32s(b, list);
}

weir_values weir_field_values(weir_batch *b, weir_level level, weir_field field) {
    weir_plugin_types_column_t col;
    weir_plugin_types_method_batch_read_field(b->handle, level, field, &col);
    return decode_column(b, col, false, field);
}

weir_strs weir_field_text(weir_batch *b, weir_level level, weir_field field) {
    weir_values vals = weir_field_values(b, level, field);
    if (!id_field(field)) return texts(b, vals);
    /* ids as lowercase hex, the way the host's matchers see them */
    const char **out = weir_alloc(b, (vals.len ? vals.len : 1) * sizeof *out);
    for (size_t i = 0; i < vals.len; i++) {
        if (vals.ptr[i].kind != WEIR_BYTES) {
            out[i] = NULL;
            continue;
        }
        char *hex = weir_alloc(b, 2 * vals.ptr[i].len + 1);
        for (size_t j = 0; j < vals.ptr[i].len; j++) snprintf(hex + 2 * j, 3, "%02x", (uint8_t)vals.ptr[i].str[j]);
        hex[2 * vals.ptr[i].len] = 0;
        out[i] = hex;
    }
    return (weir_strs){out, vals.len};
}

weir_values weir_attribute(weir_batch *b, weir_level level, const char *key) {
    weir_plugin_types_column_t col;
    plugin_string_t k = borrow_str(key);
    weir_plugin_types_method_batch_read_attribute(b->handle, level, &k, &col);
    return decode_column(b, col, true, 0);
}

weir_values weir_attribute_inherited(weir_batch *b, weir_level level, const char *key) {
    weir_plugin_types_column_t col;
    plugin_string_t k = borrow_str(key);
    weir_plugin_types_method_batch_read_attribute_inherited(b->handle, level, &k, &col);
    return decode_column(b, col, true, 0);
}

weir_strs weir_attribute_text(weir_batch *b, weir_level level, const char *key, bool inherited) {
    return texts(b, inherited ? weir_attribute_inherited(b, level, key) : weir_attribute(b, level, key));
}

weir_attr_table weir_attributes(weir_batch *b, weir_level level) {
    weir_plugin_types_attribute_table_t t;
    weir_plugin_types_method_batch_read_attributes(b->handle, level, &t);
    host_list *h = keep(b, HOST_TABLE);
    h->as.table = t;
    size_t n = t.entity_offsets.len ? t.entity_offsets.len - 1 : 0, pairs = entries(&t.keys);
    weir_attrs *out = weir_alloc(b, (n ? n : 1) * sizeof *out);
    for (size_t e = 0; e < n; e++) {
        uint32_t s = t.entity_offsets.ptr[e], end = t.entity_offsets.ptr[e + 1];
        if (end > pairs || end > entries(&t.values) || end < s) end = s;
        weir_attr *attrs = weir_alloc(b, (end - s ? end - s : 1) * sizeof *attrs);
        for (uint32_t j = s; j < end; j++) {
            uint32_t ks = t.keys.offsets.ptr[j], ke = t.keys.offsets.ptr[j + 1];
            uint32_t vs = t.values.offsets.ptr[j], ve = t.values.offsets.ptr[j + 1];
            if (ke < ks || ke > t.keys.data.len) ke = ks;
            if (ve < vs || ve > t.values.data.len) ve = vs;
            attrs[j - s].key = arena_copy(b, at(t.keys.data.ptr, ks), ke - ks);
            attrs[j - s].value = decode_tagged(b, at(t.values.data.ptr, vs), ve - vs);
        }
        out[e] = (weir_attrs){attrs, end - s};
    }
    return (weir_attr_table){out, n};
}

weir_bytes weir_to_otlp(weir_batch *b) {
    plugin_list_u8_t bytes;
    weir_plugin_types_method_batch_to_otlp(b->handle, &bytes);
    host_list *h = keep(b, HOST_BYTES);
    h->as.bytes = bytes;
    return (weir_bytes){bytes.len ? bytes.ptr : NULL, bytes.len};
}

/* ---- selecting ------------------------------------------------------------ */

static weir_plugin_types_matcher_t lower_match(weir_batch *b, weir_match m) {
    weir_plugin_types_matcher_t out;
    memset(&out, 0, sizeof out);
    out.tag = m.kind;
    if (m.kind == WEIR_PLUGIN_TYPES_MATCHER_ANY_OF || m.kind == WEIR_PLUGIN_TYPES_MATCHER_GLOB) {
        plugin_string_t *strs = weir_alloc(b, (m.strs.len ? m.strs.len : 1) * sizeof *strs);
        for (size_t i = 0; i < m.strs.len; i++) strs[i] = borrow_str(m.strs.ptr[i]);
        /* any_of and glob share the union's layout */
        out.val.glob = (plugin_list_string_t){strs, m.strs.len};
    }
    return out;
}

weir_u32s weir_select_field(weir_batch *b, weir_level level, weir_field field, weir_match m) {
    weir_plugin_types_matcher_t matcher = lower_match(b, m);
    plugin_list_u32_t list;
    weir_plugin_types_method_batch_match_field(b->handle, level, field, &matcher, &list);
    return take_u32s(b, list);
}

weir_u32s weir_select_attribute(weir_batch *b, weir_level level, const char *key, weir_match m, bool inherited) {
    weir_plugin_types_matcher_t matcher = lower_match(b, m);
    plugin_string_t k = borrow_str(key);
    plugin_list_u32_t list;
    weir_plugin_types_method_batch_match_attribute(b->handle, level, &k, &matcher, inherited, &list);
    return take_u32s(b, list);
}

/* ---- edits ---------------------------------------------------------------- */

static plugin_string_t copy_str(weir_batch *b, const char *s, size_t len) {
    return (plugin_string_t){(uint8_t *)arena_copy(b, s, len), len};
}

/* A value for the host, its bytes copied into the arena. */
static bool lower_value(weir_batch *b, weir_value v, weir_plugin_types_value_t *out) {
    memset(out, 0, sizeof *out);
    switch (v.kind) {
    case WEIR_STR: out->tag = WEIR_PLUGIN_TYPES_VALUE_STR; out->val.str = copy_str(b, v.str, v.len); return true;
    case WEIR_JSON: out->tag = WEIR_PLUGIN_TYPES_VALUE_JSON; out->val.json = copy_str(b, v.str, v.len); return true;
    case WEIR_BYTES: {
        plugin_string_t s = copy_str(b, v.str, v.len);
        out->tag = WEIR_PLUGIN_TYPES_VALUE_BYTES;
        out->val.bytes = (plugin_list_u8_t){s.ptr, s.len};
        return true;
    }
    case WEIR_INT: out->tag = WEIR_PLUGIN_TYPES_VALUE_INT; out->val.int_ = v.i; return true;
    case WEIR_DOUBLE: out->tag = WEIR_PLUGIN_TYPES_VALUE_DOUBLE; out->val.double_ = v.d; return true;
    case WEIR_BOOL: out->tag = WEIR_PLUGIN_TYPES_VALUE_BOOLEAN; out->val.boolean = v.b; return true;
    default: return false;
    }
}

static weir_plugin_types_edit_t *new_edit(weir_batch *b, uint8_t tag) {
    weir_plugin_types_edit_t *e = vec_push(&b->edits, sizeof *e);
    memset(e, 0, sizeof *e);
    e->tag = tag;
    return e;
}

static weir_u32s copy_u32s(weir_batch *b, weir_u32s list) {
    uint32_t *out = weir_alloc(b, (list.len ? list.len : 1) * sizeof *out);
    if (list.len) memcpy(out, list.ptr, list.len * sizeof *out);
    return (weir_u32s){out, list.len};
}

void weir_set_attribute(weir_batch *b, weir_level level, uint32_t entity, const char *key, weir_value v) {
    weir_plugin_types_edit_t *e = new_edit(b, WEIR_PLUGIN_TYPES_EDIT_ATTRIBUTE);
    e->val.attribute.level = level;
    e->val.attribute.entity = entity;
    e->val.attribute.key = copy_str(b, key, strlen(key));
    e->val.attribute.value.is_some = lower_value(b, v, &e->val.attribute.value.val);
}

void weir_set_attribute_many(weir_batch *b, weir_level level, weir_u32s entities, const char *key, weir_value v) {
    if (entities.len == 0) return;
    weir_u32s copy = copy_u32s(b, entities);
    weir_plugin_types_edit_t *e = new_edit(b, WEIR_PLUGIN_TYPES_EDIT_ATTRIBUTE_MANY);
    e->val.attribute_many.level = level;
    e->val.attribute_many.entities = (plugin_list_u32_t){(uint32_t *)copy.ptr, copy.len};
    e->val.attribute_many.key = copy_str(b, key, strlen(key));
    e->val.attribute_many.value.is_some = lower_value(b, v, &e->val.attribute_many.value.val);
}

void weir_remove_attribute(weir_batch *b, weir_level level, uint32_t entity, const char *key) {
    weir_value absent = {WEIR_ABSENT, NULL, 0, 0, 0, false};
    weir_set_attribute(b, level, entity, key, absent);
}

void weir_set_field(weir_batch *b, weir_level level, uint32_t entity, weir_field field, weir_value v) {
    weir_plugin_types_value_t value;
    if (!lower_value(b, v, &value)) {
        weir_fail(b, "weir_set_field: a field cannot be set to an absent value (entity %u)", (unsigned)entity);
        return;
    }
    weir_plugin_types_edit_t *e = new_edit(b, WEIR_PLUGIN_TYPES_EDIT_FIELD);
    e->val.field.level = level;
    e->val.field.entity = entity;
    e->val.field.field = field;
    e->val.field.value = value;
}

void weir_drop(weir_batch *b, uint32_t item) {
    *(uint32_t *)vec_push(&b->drops, sizeof(uint32_t)) = item;
}

void weir_drop_items(weir_batch *b, weir_u32s items) {
    for (size_t i = 0; i < items.len; i++) weir_drop(b, items.ptr[i]);
}

void weir_route(weir_batch *b, const char *name, weir_u32s items) {
    if (items.len == 0) return;
    route *r = vec_push(&b->routes, sizeof(route));
    r->name = weir_strdup(b, name);
    r->items = copy_u32s(b, items);
}

/* Hands the queued changes to the host; false (and b->error) if refused. */
static bool flush(weir_batch *b) {
    if (b->edits.len) {
        weir_plugin_types_list_edit_t list = {b->edits.ptr, b->edits.len};
        weir_plugin_types_change_error_t err;
        if (!weir_plugin_types_method_batch_apply(b->handle, &list, &err)) {
            host_list *h = keep(b, HOST_CHANGE_ERROR);
            h->as.change_error = err;
            weir_fail(b, "edit %u: %.*s", (unsigned)err.edit, (int)err.message.len, (const char *)err.message.ptr);
            return false;
        }
    }
    plugin_string_t err;
    if (b->drops.len) {
        plugin_list_u32_t items = {b->drops.ptr, b->drops.len};
        if (!weir_plugin_types_method_batch_drop_items(b->handle, &items, &err)) {
            keep(b, HOST_STRING)->as.string = err;
            weir_fail(b, "dropping items: %.*s", (int)err.len, (const char *)err.ptr);
            return false;
        }
    }
    route *r = b->routes.ptr;
    for (size_t i = 0; i < b->routes.len; i++) {
        plugin_string_t name = borrow_str(r[i].name);
        plugin_list_u32_t items = {(uint32_t *)r[i].items.ptr, r[i].items.len};
        if (!weir_plugin_types_method_batch_route_items(b->handle, &name, &items, &err)) {
            keep(b, HOST_STRING)->as.string = err;
            weir_fail(b, "routing items to %s: %.*s", r[i].name, (int)err.len, (const char *)err.ptr);
            return false;
        }
    }
    return true;
}

/* ---- the exports ---------------------------------------------------------- */

static weir_config *instance_config; /* kept for the instance: init's pointers stay valid */

/* A malloc'd copy for a returned error: the generated post-return frees it. */
static plugin_string_t owned_message(const char *s) {
    size_t n = strlen(s);
    if (n == 0) {
        s = "failed";
        n = strlen(s);
    }
    uint8_t *p = malloc(n);
    if (!p) out_of_memory();
    memcpy(p, s, n);
    return (plugin_string_t){p, n};
}

bool exports_plugin_init(plugin_string_t *config, plugin_string_t *err) {
    /* The config text is ours (the host allocated it with cabi_realloc). */
    weir_config_free(instance_config);
    instance_config = weir_config_parse((const char *)config->ptr, config->len);
    plugin_string_free(config);
    if (!instance_config) out_of_memory();
    /* init runs even on unparsable text (its getters return the defaults);
     * the parse error is recorded first, so it is the one reported. */
    int rc = weir_plugin_init(instance_config);
    const char *why = weir_config_error(instance_config);
    if (!why && rc != 0) why = "weir_plugin_init failed (it returned non-zero without weir_config_fail)";
    if (why) {
        *err = owned_message(why);
        return false;
    }
    return true;
}

static bool process(handle_t handle, plugin_context_t *ctx, plugin_plugin_error_t *err) {
    weir_batch b;
    memset(&b, 0, sizeof b);
    b.handle = handle;
    b.sequence = ctx->sequence;
    int rc = instance_config ? weir_plugin_process(&b) : weir_fail(&b, "process called before init");
    bool ok = rc == 0 && !b.error && flush(&b);
    if (!ok) {
        if (!b.error) weir_fail(&b, "weir_plugin_process returned %d", rc);
        err->message = owned_message(b.error);
    }
    arena_free(&b);
    /* The export got the handle as a borrow it must give back. */
    weir_plugin_types_batch_drop_borrow(handle);
    return ok;
}

bool exports_plugin_process_traces(plugin_borrow_batch_t batch, plugin_context_t *ctx, plugin_plugin_error_t *err) {
    return process(batch, ctx, err);
}

bool exports_plugin_process_logs(plugin_borrow_batch_t batch, plugin_context_t *ctx, plugin_plugin_error_t *err) {
    return process(batch, ctx, err);
}

bool exports_plugin_process_metrics(plugin_borrow_batch_t batch, plugin_context_t *ctx, plugin_plugin_error_t *err) {
    return process(batch, ctx, err);
}
