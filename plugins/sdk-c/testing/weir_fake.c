/* The in-memory batch (see weir_fake.h): the host side of the generated
 * bindings, natively. Values are kept in the contract's own encodings
 * (tagged attribute values, raw plain-field bytes), so what the plugin reads
 * goes through the kit's real decoders. */

#include "weir_fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEVELS 7
#define FIELDS 19
#define HANDLE 7 /* the one handle value this fake lends */

typedef struct {
    uint8_t *ptr;
    size_t len;
} blob;

typedef struct {
    char *key;
    blob value; /* tagged */
} fattr;

typedef struct {
    uint32_t owner;
    fattr *attrs;
    size_t nattrs;
    blob fields[FIELDS]; /* raw plain-field bytes; body tagged */
    bool dropped;
    char *route;
} fnode;

/* One queued edit, decoded and checked, ready to apply. */
typedef struct {
    bool is_field;
    weir_level level;
    uint32_t *entities;
    size_t n;
    char *key;
    weir_field field;
    bool remove;
    blob bytes; /* the attribute's tagged value, or the field's raw bytes */
} qedit;

typedef struct {
    void *ptr;
    size_t len, cap;
} fvec;

struct weir_fake {
    weir_signal signal;
    fnode *nodes[LEVELS];
    size_t n[LEVELS], cap[LEVELS];
    bool lent;
    size_t outstanding, calls;
    uint64_t sequence;
    char *error;
    char *text;
    fvec edits;  /* qedit */
    fvec drops;  /* uint32_t */
    fvec routes; /* qedit (key = route name) */
};

static weir_fake *current; /* the fake whose batch is lent out */

static void die(const char *what) {
    fprintf(stderr, "weir_fake: %s\n", what);
    abort();
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static blob blob_of(const void *p, size_t n) {
    blob b = {NULL, n};
    if (n) {
        b.ptr = xmalloc(n);
        memcpy(b.ptr, p, n);
    }
    return b;
}

static void *fvec_push(fvec *v, size_t size) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->ptr = realloc(v->ptr, v->cap * size);
        if (!v->ptr) die("out of memory");
    }
    return (char *)v->ptr + size * v->len++;
}

/* ---- encodings ------------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | p[i];
    return v;
}

/* A weir_value in the tagged encoding. */
static blob tagged(weir_value v) {
    uint8_t head[9];
    head[0] = (uint8_t)v.kind;
    switch (v.kind) {
    case WEIR_STR:
    case WEIR_JSON:
    case WEIR_BYTES: {
        blob b = {xmalloc(v.len + 1), v.len + 1};
        b.ptr[0] = (uint8_t)v.kind;
        if (v.len) memcpy(b.ptr + 1, v.str, v.len);
        return b;
    }
    case WEIR_INT: put_le(head + 1, (uint64_t)v.i, 8); return blob_of(head, 9);
    case WEIR_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v.d, 8);
        put_le(head + 1, bits, 8);
        return blob_of(head, 9);
    }
    case WEIR_BOOL: head[1] = v.b; return blob_of(head, 2);
    default: head[0] = 0; return blob_of(head, 1);
    }
}

/* The text a matcher compares for a tagged value (NULL when absent or bytes). */
static char *tagged_text(const uint8_t *p, size_t n) {
    char buf[400];
    if (n == 0) return NULL;
    switch (p[0]) {
    case WEIR_STR:
    case WEIR_JSON: return xstrndup((const char *)p + 1, n - 1);
    case WEIR_INT:
        if (n != 9) return NULL;
        snprintf(buf, sizeof buf, "%lld", (long long)(int64_t)get_le(p + 1, 8));
        return xstrndup(buf, strlen(buf));
    case WEIR_DOUBLE: {
        if (n != 9) return NULL;
        uint64_t bits = get_le(p + 1, 8);
        double d;
        memcpy(&d, &bits, 8);
        weir_format_double(buf, sizeof buf, d);
        return xstrndup(buf, strlen(buf));
    }
    case WEIR_BOOL: return n == 2 ? xstrndup(p[1] ? "true" : "false", p[1] ? 4 : 5) : NULL;
    default: return NULL;
    }
}

static bool is_text_field(weir_field f) {
    return f == WEIR_FIELD_NAME || f == WEIR_FIELD_STATUS_MESSAGE || f == WEIR_FIELD_TRACE_STATE ||
           f == WEIR_FIELD_SEVERITY_TEXT || f == WEIR_FIELD_EVENT_NAME || f == WEIR_FIELD_UNIT ||
           f == WEIR_FIELD_DESCRIPTION;
}

/* A plain field entry as matcher text (the contract's field_text). */
static char *field_text(weir_field f, const uint8_t *p, size_t n) {
    char buf[64];
    if (f == WEIR_FIELD_BODY) return tagged_text(p, n);
    if (is_text_field(f)) return xstrndup((const char *)p, n);
    if (n == 0) return NULL;
    if (f == WEIR_FIELD_TRACE_ID || f == WEIR_FIELD_SPAN_ID || f == WEIR_FIELD_PARENT_SPAN_ID) {
        char *hex = xmalloc(2 * n + 1);
        for (size_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", p[i]);
        return hex;
    }
    if (n == 4 && f == WEIR_FIELD_FLAGS) snprintf(buf, sizeof buf, "%u", (unsigned)get_le(p, 4));
    else if (n == 4) snprintf(buf, sizeof buf, "%d", (int)(int32_t)(uint32_t)get_le(p, 4));
    else if (n == 8) snprintf(buf, sizeof buf, "%llu", (unsigned long long)get_le(p, 8));
    else return NULL;
    return xstrndup(buf, strlen(buf));
}

/* `*` any run of characters, `?` one UTF-8 character. */
static bool glob_match(const char *p, const char *s) {
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?') {
            p++;
            s++;
            while ((*s & 0xC0) == 0x80) s++;
        } else if (*p && *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
            while ((*s & 0xC0) == 0x80) s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*') p++;
    return *p == 0;
}

static bool hits(const weir_plugin_types_matcher_t *m, const char *text) {
    if (m->tag == WEIR_PLUGIN_TYPES_MATCHER_ABSENT) return text == NULL;
    if (!text) return false;
    if (m->tag == WEIR_PLUGIN_TYPES_MATCHER_PRESENT) return true;
    const plugin_list_string_t *l = &m->val.glob;
    for (size_t i = 0; i < l->len; i++) {
        char *pat = xstrndup((const char *)l->ptr[i].ptr, l->ptr[i].len);
        bool hit = m->tag == WEIR_PLUGIN_TYPES_MATCHER_GLOB ? glob_match(pat, text) : strcmp(pat, text) == 0;
        free(pat);
        if (hit) return true;
    }
    return false;
}

/* ---- building ------------------------------------------------------------- */

weir_fake *weir_fake_new(weir_signal signal) {
    weir_fake *f = calloc(1, sizeof *f);
    if (!f) die("out of memory");
    f->signal = signal;
    return f;
}

static uint32_t add(weir_fake *f, weir_level level, uint32_t owner) {
    if (f->n[level] == f->cap[level]) {
        f->cap[level] = f->cap[level] ? f->cap[level] * 2 : 8;
        f->nodes[level] = realloc(f->nodes[level], f->cap[level] * sizeof(fnode));
        if (!f->nodes[level]) die("out of memory");
    }
    fnode *n = &f->nodes[level][f->n[level]];
    memset(n, 0, sizeof *n);
    n->owner = owner;
    return (uint32_t)f->n[level]++;
}

static fnode *node(weir_fake *f, weir_level level, uint32_t i) {
    if (level >= LEVELS || i >= f->n[level]) die("no such entity");
    return &f->nodes[level][i];
}

uint32_t weir_fake_resource(weir_fake *f) {
    uint32_t r = add(f, WEIR_RESOURCE, 0);
    add(f, WEIR_SCOPE, r);
    return r;
}

uint32_t weir_fake_scope(weir_fake *f, uint32_t resource) {
    node(f, WEIR_RESOURCE, resource);
    return add(f, WEIR_SCOPE, resource);
}

static uint32_t last_scope(weir_fake *f, uint32_t resource) {
    for (size_t i = f->n[WEIR_SCOPE]; i-- > 0;)
        if (f->nodes[WEIR_SCOPE][i].owner == resource) return (uint32_t)i;
    die("no such resource");
    return 0;
}

uint32_t weir_fake_span(weir_fake *f, uint32_t resource, const char *name) {
    uint32_t i = add(f, WEIR_ITEM, last_scope(f, resource));
    weir_fake_field(f, WEIR_ITEM, i, WEIR_FIELD_NAME, name, strlen(name));
    return i;
}

uint32_t weir_fake_log(weir_fake *f, uint32_t resource, weir_value body) {
    uint32_t i = add(f, WEIR_ITEM, last_scope(f, resource));
    node(f, WEIR_ITEM, i)->fields[WEIR_FIELD_BODY] = tagged(body);
    return i;
}

uint32_t weir_fake_event(weir_fake *f, uint32_t item, const char *name) {
    node(f, WEIR_ITEM, item);
    uint32_t i = add(f, WEIR_EVENT, item);
    weir_fake_field(f, WEIR_EVENT, i, WEIR_FIELD_NAME, name, strlen(name));
    return i;
}

uint32_t weir_fake_link(weir_fake *f, uint32_t item) {
    node(f, WEIR_ITEM, item);
    return add(f, WEIR_LINK, item);
}

static void set_attr(fnode *n, const char *key, blob value) {
    for (size_t i = 0; i < n->nattrs; i++) {
        if (strcmp(n->attrs[i].key, key) == 0) {
            free(n->attrs[i].value.ptr);
            n->attrs[i].value = value;
            return;
        }
    }
    n->attrs = realloc(n->attrs, (n->nattrs + 1) * sizeof *n->attrs);
    if (!n->attrs) die("out of memory");
    n->attrs[n->nattrs].key = xstrndup(key, strlen(key));
    n->attrs[n->nattrs++].value = value;
}

static void remove_attr(fnode *n, const char *key) {
    for (size_t i = 0; i < n->nattrs; i++) {
        if (strcmp(n->attrs[i].key, key) == 0) {
            free(n->attrs[i].key);
            free(n->attrs[i].value.ptr);
            memmove(&n->attrs[i], &n->attrs[i + 1], (n->nattrs - i - 1) * sizeof *n->attrs);
            n->nattrs--;
            return;
        }
    }
}

void weir_fake_attr(weir_fake *f, weir_level level, uint32_t entity, const char *key, weir_value v) {
    fnode *n = node(f, level, entity);
    if (v.kind == WEIR_ABSENT) remove_attr(n, key);
    else set_attr(n, key, tagged(v));
}

void weir_fake_field(weir_fake *f, weir_level level, uint32_t entity, weir_field field, const void *bytes,
                     size_t len) {
    fnode *n = node(f, level, entity);
    if (field >= FIELDS) die("no such field");
    free(n->fields[field].ptr);
    n->fields[field] = blob_of(bytes, len);
}

static void free_queue(weir_fake *f) {
    fvec *qs[] = {&f->edits, &f->routes};
    for (size_t q = 0; q < 2; q++) {
        qedit *e = qs[q]->ptr;
        for (size_t i = 0; i < qs[q]->len; i++) {
            free(e[i].entities);
            free(e[i].key);
            free(e[i].bytes.ptr);
        }
        qs[q]->len = 0;
    }
    f->drops.len = 0;
}

void weir_fake_free(weir_fake *f) {
    if (!f) return;
    free_queue(f);
    free(f->edits.ptr);
    free(f->drops.ptr);
    free(f->routes.ptr);
    for (size_t l = 0; l < LEVELS; l++) {
        for (size_t i = 0; i < f->n[l]; i++) {
            fnode *n = &f->nodes[l][i];
            for (size_t a = 0; a < n->nattrs; a++) {
                free(n->attrs[a].key);
                free(n->attrs[a].value.ptr);
            }
            free(n->attrs);
            for (size_t k = 0; k < FIELDS; k++) free(n->fields[k].ptr);
            free(n->route);
        }
        free(f->nodes[l]);
    }
    free(f->error);
    free(f->text);
    free(f);
}

/* ---- running -------------------------------------------------------------- */

static void set_error(weir_fake *f, const char *msg, size_t len) {
    free(f->error);
    f->error = xstrndup(msg, len);
}

const char *weir_fake_init(weir_fake *f, const char *config_json) {
    plugin_string_t config = {NULL, strlen(config_json)}, err = {NULL, 0};
    if (config.len) {
        config.ptr = xmalloc(config.len); /* the guest owns (and frees) its argument */
        memcpy(config.ptr, config_json, config.len);
    }
    if (exports_plugin_init(&config, &err)) return NULL;
    set_error(f, (const char *)err.ptr, err.len);
    free(err.ptr); /* what the post-return function does */
    return f->error;
}

static void apply_queue(weir_fake *f) {
    qedit *e = f->edits.ptr;
    for (size_t i = 0; i < f->edits.len; i++) {
        for (size_t j = 0; j < e[i].n; j++) {
            fnode *n = node(f, e[i].level, e[i].entities[j]);
            if (e[i].is_field) {
                free(n->fields[e[i].field].ptr);
                n->fields[e[i].field] = blob_of(e[i].bytes.ptr, e[i].bytes.len);
            } else if (e[i].remove) {
                remove_attr(n, e[i].key);
            } else {
                set_attr(n, e[i].key, blob_of(e[i].bytes.ptr, e[i].bytes.len));
            }
        }
    }
    uint32_t *d = f->drops.ptr;
    for (size_t i = 0; i < f->drops.len; i++) node(f, WEIR_ITEM, d[i])->dropped = true;
    qedit *r = f->routes.ptr;
    for (size_t i = 0; i < f->routes.len; i++) {
        for (size_t j = 0; j < r[i].n; j++) {
            fnode *n = node(f, WEIR_ITEM, r[i].entities[j]);
            free(n->route);
            n->route = xstrndup(r[i].key, strlen(r[i].key));
        }
    }
}

const char *weir_fake_process(weir_fake *f) {
    plugin_context_t ctx = {f->sequence++};
    plugin_plugin_error_t err = {{NULL, 0}};
    weir_plugin_types_borrow_batch_t h = {HANDLE};
    free_queue(f);
    current = f;
    f->lent = true;
    bool ok;
    switch (f->signal) {
    case WEIR_TRACES: ok = exports_plugin_process_traces(h, &ctx, &err); break;
    case WEIR_LOGS: ok = exports_plugin_process_logs(h, &ctx, &err); break;
    default: ok = exports_plugin_process_metrics(h, &ctx, &err); break;
    }
    current = NULL;
    if (f->lent) {
        f->lent = false;
        if (!ok) free(err.message.ptr);
        free_queue(f);
        set_error(f, "borrow handles still remain at the end of the call", 50);
        return f->error;
    }
    if (!ok) {
        set_error(f, (const char *)err.message.ptr, err.message.len);
        free(err.message.ptr);
        free_queue(f);
        return f->error;
    }
    apply_queue(f);
    free_queue(f);
    return NULL;
}

/* ---- inspecting ----------------------------------------------------------- */

static const char *keep_text(weir_fake *f, char *text) {
    free(f->text);
    f->text = text;
    return text;
}

const char *weir_fake_attr_text(weir_fake *f, weir_level level, uint32_t entity, const char *key) {
    fnode *n = node(f, level, entity);
    for (size_t i = 0; i < n->nattrs; i++)
        if (strcmp(n->attrs[i].key, key) == 0)
            return keep_text(f, tagged_text(n->attrs[i].value.ptr, n->attrs[i].value.len));
    return NULL;
}

const char *weir_fake_name(weir_fake *f, weir_level level, uint32_t entity) {
    blob *b = &node(f, level, entity)->fields[WEIR_FIELD_NAME];
    return keep_text(f, xstrndup((const char *)b->ptr, b->len));
}

bool weir_fake_dropped(weir_fake *f, uint32_t item) {
    return node(f, WEIR_ITEM, item)->dropped;
}

const char *weir_fake_route(weir_fake *f, uint32_t item) {
    return node(f, WEIR_ITEM, item)->route;
}

size_t weir_fake_outstanding(weir_fake *f) {
    return f->outstanding;
}

size_t weir_fake_calls(weir_fake *f) {
    return f->calls;
}

/* ---- the imported functions (what the host does) -------------------------- */

static weir_fake *lent(weir_plugin_types_borrow_batch_t self) {
    if (!current || !current->lent || self.__handle != HANDLE)
        die("the plugin used a batch handle outside its call (or after dropping it)");
    current->calls++;
    return current;
}

/* A list handed to the guest: malloc'd (the guest frees it) and counted. */
static void *give(weir_fake *f, const void *src, size_t bytes) {
    if (bytes == 0) return NULL;
    f->outstanding++;
    void *p = xmalloc(bytes);
    memcpy(p, src, bytes);
    return p;
}

static void give_u32s(weir_fake *f, const uint32_t *v, size_t n, plugin_list_u32_t *ret) {
    ret->ptr = give(f, v, n * sizeof *v);
    ret->len = n;
}

/* Builds a column from entries. */
typedef struct {
    fvec data;    /* uint8_t */
    fvec offsets; /* uint32_t */
} colb;

static void colb_push(colb *c, const uint8_t *p, size_t n) {
    if (c->offsets.len == 0) *(uint32_t *)fvec_push(&c->offsets, 4) = 0;
    for (size_t i = 0; i < n; i++) *(uint8_t *)fvec_push(&c->data, 1) = p[i];
    *(uint32_t *)fvec_push(&c->offsets, 4) = (uint32_t)c->data.len;
}

static void colb_give(weir_fake *f, colb *c, weir_plugin_types_column_t *ret) {
    if (c->offsets.len == 0) *(uint32_t *)fvec_push(&c->offsets, 4) = 0;
    ret->data.ptr = give(f, c->data.ptr, c->data.len);
    ret->data.len = c->data.len;
    give_u32s(f, c->offsets.ptr, c->offsets.len, &ret->offsets);
    free(c->data.ptr);
    free(c->offsets.ptr);
}

static weir_level parent_of(weir_level l) {
    switch (l) {
    case WEIR_SCOPE: return WEIR_RESOURCE;
    case WEIR_ITEM: return WEIR_SCOPE;
    case WEIR_EVENT:
    case WEIR_LINK: return WEIR_ITEM;
    default: return LEVELS;
    }
}

/* Entity i's ancestor at `of`, or -1 when `of` is not above `level`. */
static long ancestor(weir_fake *f, weir_level level, uint32_t i, weir_level of) {
    long at = i;
    for (weir_level l = level; parent_of(l) != LEVELS;) {
        at = f->nodes[l][at].owner;
        l = parent_of(l);
        if (l == of) return at;
    }
    return -1;
}

weir_signal weir_plugin_types_method_batch_signal(weir_plugin_types_borrow_batch_t self) {
    return lent(self)->signal;
}

uint32_t weir_plugin_types_method_batch_len(weir_plugin_types_borrow_batch_t self) {
    return (uint32_t)lent(self)->n[WEIR_ITEM];
}

uint32_t weir_plugin_types_method_batch_count(weir_plugin_types_borrow_batch_t self, weir_level level) {
    weir_fake *f = lent(self);
    return level < LEVELS ? (uint32_t)f->n[level] : 0;
}

void weir_plugin_types_method_batch_owners(weir_plugin_types_borrow_batch_t self, weir_level level,
                                           plugin_list_u32_t *ret) {
    weir_fake *f = lent(self);
    size_t n = level == WEIR_RESOURCE || level >= LEVELS ? 0 : f->n[level];
    uint32_t *tmp = xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) tmp[i] = f->nodes[level][i].owner;
    give_u32s(f, tmp, n, ret);
    free(tmp);
}

void weir_plugin_types_method_batch_ancestors(weir_plugin_types_borrow_batch_t self, weir_level level,
                                              weir_level of, plugin_list_u32_t *ret) {
    weir_fake *f = lent(self);
    size_t n = level < LEVELS ? f->n[level] : 0;
    uint32_t *tmp = xmalloc(n * sizeof *tmp);
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        long a = ancestor(f, level, (uint32_t)i, of);
        if (a < 0) break;
        tmp[got++] = (uint32_t)a;
    }
    give_u32s(f, tmp, got, ret);
    free(tmp);
}

/* A field entry as the host sends it (a log without a body: absent, [0]). */
static blob field_entry(weir_fake *f, weir_level level, uint32_t i, weir_field field) {
    static uint8_t absent = 0;
    blob b = f->nodes[level][i].fields[field];
    if (field == WEIR_FIELD_BODY && level == WEIR_ITEM && f->signal == WEIR_LOGS && b.len == 0)
        return (blob){&absent, 1};
    return b;
}

void weir_plugin_types_method_batch_read_field(weir_plugin_types_borrow_batch_t self, weir_level level,
                                               weir_field field, weir_plugin_types_column_t *ret) {
    weir_fake *f = lent(self);
    colb c = {{0}, {0}};
    for (size_t i = 0; level < LEVELS && field < FIELDS && i < f->n[level]; i++) {
        blob b = field_entry(f, level, (uint32_t)i, field);
        colb_push(&c, b.ptr, b.len);
    }
    colb_give(f, &c, ret);
}

static const blob *find_attr(fnode *n, const char *key, size_t klen) {
    for (size_t a = 0; a < n->nattrs; a++)
        if (strlen(n->attrs[a].key) == klen && memcmp(n->attrs[a].key, key, klen) == 0) return &n->attrs[a].value;
    return NULL;
}

/* Entity i's attribute, from the nearest entity up the tree when inherited. */
static const blob *lookup(weir_fake *f, weir_level level, uint32_t i, const plugin_string_t *key, bool inherited) {
    const blob *v = find_attr(&f->nodes[level][i], (const char *)key->ptr, key->len);
    const weir_level up[] = {WEIR_ITEM, WEIR_SCOPE, WEIR_RESOURCE};
    for (size_t u = 0; inherited && !v && u < 3; u++) {
        long a = ancestor(f, level, i, up[u]);
        if (a >= 0) v = find_attr(&f->nodes[up[u]][a], (const char *)key->ptr, key->len);
    }
    return v;
}

static void read_attr(weir_plugin_types_borrow_batch_t self, weir_level level, plugin_string_t *key,
                      bool inherited, weir_plugin_types_column_t *ret) {
    weir_fake *f = lent(self);
    static const uint8_t absent = 0;
    colb c = {{0}, {0}};
    for (size_t i = 0; level < LEVELS && i < f->n[level]; i++) {
        const blob *v = lookup(f, level, (uint32_t)i, key, inherited);
        if (v) colb_push(&c, v->ptr, v->len);
        else colb_push(&c, &absent, 1);
    }
    colb_give(f, &c, ret);
}

void weir_plugin_types_method_batch_read_attribute(weir_plugin_types_borrow_batch_t self, weir_level level,
                                                   plugin_string_t *key, weir_plugin_types_column_t *ret) {
    read_attr(self, level, key, false, ret);
}

void weir_plugin_types_method_batch_read_attribute_inherited(weir_plugin_types_borrow_batch_t self,
                                                             weir_level level, plugin_string_t *key,
                                                             weir_plugin_types_column_t *ret) {
    read_attr(self, level, key, true, ret);
}

void weir_plugin_types_method_batch_read_attributes(weir_plugin_types_borrow_batch_t self, weir_level level,
                                                    weir_plugin_types_attribute_table_t *ret) {
    weir_fake *f = lent(self);
    colb keys = {{0}, {0}}, values = {{0}, {0}};
    size_t n = level < LEVELS ? f->n[level] : 0, at = 0;
    uint32_t *offs = xmalloc((n + 1) * sizeof *offs);
    offs[0] = 0;
    for (size_t i = 0; i < n; i++) {
        fnode *nd = &f->nodes[level][i];
        for (size_t a = 0; a < nd->nattrs; a++, at++) {
            colb_push(&keys, (const uint8_t *)nd->attrs[a].key, strlen(nd->attrs[a].key));
            colb_push(&values, nd->attrs[a].value.ptr, nd->attrs[a].value.len);
        }
        offs[i + 1] = (uint32_t)at;
    }
    give_u32s(f, offs, n + 1, &ret->entity_offsets);
    free(offs);
    colb_give(f, &keys, &ret->keys);
    colb_give(f, &values, &ret->values);
}

void weir_plugin_types_method_batch_match_field(weir_plugin_types_borrow_batch_t self, weir_level level,
                                                weir_field field, weir_plugin_types_matcher_t *matcher,
                                                plugin_list_u32_t *ret) {
    weir_fake *f = lent(self);
    size_t n = level < LEVELS && field < FIELDS ? f->n[level] : 0, got = 0;
    uint32_t *tmp = xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        blob b = field_entry(f, level, (uint32_t)i, field);
        char *text = field_text(field, b.ptr, b.len);
        if (hits(matcher, text)) tmp[got++] = (uint32_t)i;
        free(text);
    }
    give_u32s(f, tmp, got, ret);
    free(tmp);
}

void weir_plugin_types_method_batch_match_attribute(weir_plugin_types_borrow_batch_t self, weir_level level,
                                                    plugin_string_t *key, weir_plugin_types_matcher_t *matcher,
                                                    bool inherited, plugin_list_u32_t *ret) {
    weir_fake *f = lent(self);
    size_t n = level < LEVELS ? f->n[level] : 0, got = 0;
    uint32_t *tmp = xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        const blob *v = lookup(f, level, (uint32_t)i, key, inherited);
        char *text = v ? tagged_text(v->ptr, v->len) : NULL;
        if (hits(matcher, text)) tmp[got++] = (uint32_t)i;
        free(text);
    }
    give_u32s(f, tmp, got, ret);
    free(tmp);
}

/* The host's error string for a refusal, guest-owned. */
static void give_string(weir_fake *f, const char *msg, plugin_string_t *err) {
    err->len = strlen(msg);
    err->ptr = give(f, msg, err->len);
}

static weir_value value_of(const weir_plugin_types_value_t *v) {
    switch (v->tag) {
    case WEIR_PLUGIN_TYPES_VALUE_STR: return weir_val_str_n((const char *)v->val.str.ptr, v->val.str.len);
    case WEIR_PLUGIN_TYPES_VALUE_INT: return weir_val_int(v->val.int_);
    case WEIR_PLUGIN_TYPES_VALUE_DOUBLE: return weir_val_double(v->val.double_);
    case WEIR_PLUGIN_TYPES_VALUE_BOOLEAN: return weir_val_bool(v->val.boolean);
    case WEIR_PLUGIN_TYPES_VALUE_BYTES: return weir_val_bytes(v->val.bytes.ptr, v->val.bytes.len);
    default: {
        weir_value j = weir_val_str_n((const char *)v->val.json.ptr, v->val.json.len);
        j.kind = WEIR_JSON;
        return j;
    }
    }
}

static const char *json_problem(weir_value v) {
    static char err[200];
    if (v.kind != WEIR_JSON) return NULL;
    weir_json *parsed = weir_json_parse(v.str, v.len, err, sizeof err);
    if (parsed) {
        weir_json_free(parsed);
        return NULL;
    }
    return err;
}

/* Which value a settable field takes ('s' string, 'i' int, 'a' any), or 0. */
static char settable(weir_signal signal, weir_level level, weir_field field) {
    if (level == WEIR_ITEM && signal == WEIR_TRACES) {
        if (field == WEIR_FIELD_NAME || field == WEIR_FIELD_STATUS_MESSAGE || field == WEIR_FIELD_TRACE_STATE)
            return 's';
        if (field == WEIR_FIELD_KIND || field == WEIR_FIELD_STATUS_CODE) return 'i';
    }
    if (level == WEIR_ITEM && signal == WEIR_LOGS) {
        if (field == WEIR_FIELD_BODY) return 'a';
        if (field == WEIR_FIELD_SEVERITY_TEXT || field == WEIR_FIELD_EVENT_NAME) return 's';
        if (field == WEIR_FIELD_SEVERITY_NUMBER) return 'i';
    }
    if (level == WEIR_EVENT && field == WEIR_FIELD_NAME) return 's';
    if (level == WEIR_METRIC &&
        (field == WEIR_FIELD_NAME || field == WEIR_FIELD_DESCRIPTION || field == WEIR_FIELD_UNIT))
        return 's';
    return 0;
}

/* Checks one edit and queues its decoded form; an error message or NULL. */
static const char *check_edit(weir_fake *f, const weir_plugin_types_edit_t *e, qedit *q) {
    static char why[300];
    memset(q, 0, sizeof *q);
    const weir_plugin_types_value_t *value = NULL;
    const uint32_t *ents;
    size_t n;
    if (e->tag == WEIR_PLUGIN_TYPES_EDIT_FIELD) {
        q->is_field = true;
        q->level = e->val.field.level;
        q->field = e->val.field.field;
        ents = &e->val.field.entity;
        n = 1;
        value = &e->val.field.value;
    } else if (e->tag == WEIR_PLUGIN_TYPES_EDIT_ATTRIBUTE) {
        q->level = e->val.attribute.level;
        q->key = xstrndup((const char *)e->val.attribute.key.ptr, e->val.attribute.key.len);
        ents = &e->val.attribute.entity;
        n = 1;
        if (e->val.attribute.value.is_some) value = &e->val.attribute.value.val;
    } else {
        q->level = e->val.attribute_many.level;
        q->key = xstrndup((const char *)e->val.attribute_many.key.ptr, e->val.attribute_many.key.len);
        ents = e->val.attribute_many.entities.ptr;
        n = e->val.attribute_many.entities.len;
        if (e->val.attribute_many.value.is_some) value = &e->val.attribute_many.value.val;
    }
    q->entities = xmalloc(n * sizeof *q->entities);
    q->n = n;
    for (size_t i = 0; i < n; i++) {
        if (q->level >= LEVELS || ents[i] >= f->n[q->level]) {
            snprintf(why, sizeof why, "entity %u does not exist at that level", (unsigned)ents[i]);
            return why;
        }
        q->entities[i] = ents[i];
    }
    q->remove = value == NULL;
    if (!value) return NULL;
    weir_value v = value_of(value);
    const char *bad_json = json_problem(v);
    if (bad_json) {
        snprintf(why, sizeof why, "the JSON value does not parse: %s", bad_json);
        return why;
    }
    if (!q->is_field) {
        q->bytes = tagged(v);
        return NULL;
    }
    char want = settable(f->signal, q->level, q->field);
    if (!want) return "that field cannot be set at that level";
    if (want == 'a') {
        q->bytes = tagged(v);
    } else if (want == 's') {
        if (v.kind != WEIR_STR) return "that field takes a string";
        q->bytes = blob_of(v.str, v.len);
    } else {
        if (v.kind != WEIR_INT || v.i < INT32_MIN || v.i > INT32_MAX) return "that field takes a 32-bit int";
        uint8_t b[4];
        put_le(b, (uint64_t)(uint32_t)(int32_t)v.i, 4);
        q->bytes = blob_of(b, 4);
    }
    return NULL;
}

bool weir_plugin_types_method_batch_apply(weir_plugin_types_borrow_batch_t self,
                                          weir_plugin_types_list_edit_t *edits,
                                          weir_plugin_types_change_error_t *err) {
    weir_fake *f = lent(self);
    size_t before = f->edits.len;
    for (size_t i = 0; i < edits->len; i++) {
        qedit *q = fvec_push(&f->edits, sizeof(qedit));
        const char *why = check_edit(f, &edits->ptr[i], q);
        if (why) {
            /* queue none of this list */
            qedit *all = f->edits.ptr;
            for (size_t j = before; j < f->edits.len; j++) {
                free(all[j].entities);
                free(all[j].key);
                free(all[j].bytes.ptr);
            }
            f->edits.len = before;
            err->edit = (uint32_t)i;
            give_string(f, why, &err->message);
            return false;
        }
    }
    return true;
}

static const char *check_items(weir_fake *f, const plugin_list_u32_t *items) {
    static char why[100];
    for (size_t i = 0; i < items->len; i++) {
        if (items->ptr[i] >= f->n[WEIR_ITEM]) {
            snprintf(why, sizeof why, "item %u does not exist", (unsigned)items->ptr[i]);
            return why;
        }
    }
    return NULL;
}

bool weir_plugin_types_method_batch_drop_items(weir_plugin_types_borrow_batch_t self, plugin_list_u32_t *items,
                                               plugin_string_t *err) {
    weir_fake *f = lent(self);
    const char *why = check_items(f, items);
    if (why) {
        give_string(f, why, err);
        return false;
    }
    for (size_t i = 0; i < items->len; i++) *(uint32_t *)fvec_push(&f->drops, 4) = items->ptr[i];
    return true;
}

bool weir_plugin_types_method_batch_route_items(weir_plugin_types_borrow_batch_t self, plugin_string_t *route,
                                                plugin_list_u32_t *items, plugin_string_t *err) {
    weir_fake *f = lent(self);
    const char *why = check_items(f, items);
    if (why) {
        give_string(f, why, err);
        return false;
    }
    qedit *q = fvec_push(&f->routes, sizeof(qedit));
    memset(q, 0, sizeof *q);
    q->key = xstrndup((const char *)route->ptr, route->len);
    q->entities = xmalloc(items->len * sizeof *q->entities);
    q->n = items->len;
    memcpy(q->entities, items->ptr, items->len * sizeof *q->entities);
    return true;
}

void weir_plugin_types_method_batch_to_otlp(weir_plugin_types_borrow_batch_t self, plugin_list_u8_t *ret) {
    weir_fake *f = lent(self);
    /* The fake has no protobuf encoder: an empty request of the signal. */
    ret->ptr = NULL;
    ret->len = 0;
    (void)f;
}

bool weir_plugin_types_method_batch_replace_otlp(weir_plugin_types_borrow_batch_t self, plugin_list_u8_t *otlp,
                                                 plugin_string_t *err) {
    weir_fake *f = lent(self);
    (void)otlp;
    give_string(f, "the fake batch cannot decode OTLP protobuf; test replace-otlp with `weir plugin test`", err);
    return false;
}

void weir_plugin_types_batch_drop_borrow(weir_plugin_types_borrow_batch_t handle) {
    if (!current || !current->lent || handle.__handle != HANDLE) die("a batch handle was dropped twice");
    current->lent = false;
}

/* ---- the free helpers the generated plugin.c defines for wasm ------------ */

static void taken(void *p, size_t len) {
    if (len == 0) return;
    free(p);
    /* lists are counted per fake; the kit frees them while the batch is lent */
    if (current) current->outstanding--;
}

void plugin_list_u8_free(plugin_list_u8_t *ptr) {
    taken(ptr->ptr, ptr->len);
}

void plugin_list_u32_free(plugin_list_u32_t *ptr) {
    taken(ptr->ptr, ptr->len);
}

void plugin_string_free(plugin_string_t *ret) {
    /* Also used by the kit for init's config, which the fake does not count. */
    if (ret->len) {
        if (current) current->outstanding--;
        free(ret->ptr);
    }
    ret->ptr = NULL;
    ret->len = 0;
}

void weir_plugin_types_column_free(weir_plugin_types_column_t *ptr) {
    plugin_list_u8_free(&ptr->data);
    plugin_list_u32_free(&ptr->offsets);
}

void weir_plugin_types_attribute_table_free(weir_plugin_types_attribute_table_t *ptr) {
    plugin_list_u32_free(&ptr->entity_offsets);
    weir_plugin_types_column_free(&ptr->keys);
    weir_plugin_types_column_free(&ptr->values);
}

void weir_plugin_types_change_error_free(weir_plugin_types_change_error_t *ptr) {
    plugin_string_free(&ptr->message);
}
