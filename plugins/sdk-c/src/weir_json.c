/* A small recursive-descent JSON reader (RFC 8259) and the typed config
 * reader on top of it. See include/weir_json.h for the ownership rules. */

#include "weir_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
    bool failed;
} parser;

static void fail(parser *p, const char *what) {
    if (p->failed) return;
    p->failed = true;
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "at byte %zu: %s", p->pos, what);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return false;
    p->pos += n;
    return true;
}

/* A growable byte buffer for string contents. */
typedef struct {
    char *ptr;
    size_t len, cap;
} buf;

static bool buf_put(buf *b, const char *bytes, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->ptr, cap);
        if (!grown) return false;
        b->ptr = grown;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, bytes, n);
    b->len += n;
    b->ptr[b->len] = 0;
    return true;
}

static int hex4(parser *p) {
    if (p->len - p->pos < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    p->pos += 4;
    return v;
}

static size_t utf8(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at p->pos (which is at the opening quote). */
static char *parse_string(parser *p, size_t *out_len) {
    buf b = {0};
    p->pos++; /* the quote */
    if (!buf_put(&b, "", 0)) { fail(p, "out of memory"); return NULL; }
    for (;;) {
        if (p->pos >= p->len) { fail(p, "unterminated string"); break; }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            *out_len = b.len;
            return b.ptr;
        }
        if (c < 0x20) { fail(p, "control character in string (escape it)"); break; }
        if (c != '\\') {
            size_t start = p->pos;
            while (p->pos < p->len && p->s[p->pos] != '"' && p->s[p->pos] != '\\' &&
                   (unsigned char)p->s[p->pos] >= 0x20)
                p->pos++;
            if (!buf_put(&b, p->s + start, p->pos - start)) { fail(p, "out of memory"); break; }
            continue;
        }
        p->pos++;
        if (p->pos >= p->len) { fail(p, "unterminated string"); break; }
        char e = p->s[p->pos++], one;
        switch (e) {
        case '"': one = '"'; break;
        case '\\': one = '\\'; break;
        case '/': one = '/'; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u': {
            int hi = hex4(p);
            if (hi < 0) { fail(p, "bad \\u escape (4 hex digits)"); goto out; }
            uint32_t cp = (uint32_t)hi;
            if (hi >= 0xD800 && hi <= 0xDBFF) {
                int lo = -1;
                if (literal(p, "\\u")) lo = hex4(p);
                if (lo < 0xDC00 || lo > 0xDFFF) { fail(p, "unpaired surrogate in \\u escape"); goto out; }
                cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            } else if (hi >= 0xDC00 && hi <= 0xDFFF) {
                fail(p, "unpaired surrogate in \\u escape");
                goto out;
            }
            char enc[4];
            if (!buf_put(&b, enc, utf8(cp, enc))) { fail(p, "out of memory"); goto out; }
            continue;
        }
        default:
            p->pos--;
            fail(p, "unknown escape in string");
            goto out;
        }
        if (!buf_put(&b, &one, 1)) { fail(p, "out of memory"); break; }
    }
out:
    free(b.ptr);
    return NULL;
}

static bool parse_number(parser *p, double *out) {
    size_t start = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len) { fail(p, "expected a digit"); return false; }
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9') {
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    } else {
        fail(p, "expected a digit");
        return false;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        size_t digits = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == digits) { fail(p, "expected a digit after '.'"); return false; }
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t digits = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == digits) { fail(p, "expected a digit in the exponent"); return false; }
    }
    char tmp[64];
    size_t n = p->pos - start;
    if (n >= sizeof tmp) {
        char *big = malloc(n + 1);
        if (!big) { fail(p, "out of memory"); return false; }
        memcpy(big, p->s + start, n);
        big[n] = 0;
        *out = strtod(big, NULL);
        free(big);
    } else {
        memcpy(tmp, p->s + start, n);
        tmp[n] = 0;
        *out = strtod(tmp, NULL);
    }
    return true;
}

static void free_inner(weir_json *v);

static bool parse_value(parser *p, weir_json *v, int depth);

static bool push_item(parser *p, weir_json *v, size_t *cap, bool with_key) {
    if (v->count == *cap) {
        size_t grown = *cap ? *cap * 2 : 4;
        weir_json *items = realloc(v->items, grown * sizeof *items);
        if (!items) { fail(p, "out of memory"); return false; }
        v->items = items;
        if (with_key) {
            char **keys = realloc(v->keys, grown * sizeof *keys);
            if (!keys) { fail(p, "out of memory"); return false; }
            v->keys = keys;
        }
        *cap = grown;
    }
    memset(&v->items[v->count], 0, sizeof v->items[0]);
    if (with_key) v->keys[v->count] = NULL;
    v->count++;
    return true;
}

static bool parse_container(parser *p, weir_json *v, int depth, bool object) {
    char close = object ? '}' : ']';
    size_t cap = 0;
    v->type = object ? WEIR_JSON_OBJECT : WEIR_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return true; }
    for (;;) {
        if (!push_item(p, v, &cap, object)) return false;
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"') { fail(p, "expected a string key"); return false; }
            size_t klen;
            v->keys[v->count - 1] = parse_string(p, &klen);
            if (!v->keys[v->count - 1]) return false;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') { fail(p, "expected ':'"); return false; }
            p->pos++;
        }
        if (!parse_value(p, &v->items[v->count - 1], depth + 1)) return false;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return true; }
        fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return false;
    }
}

static bool parse_value(parser *p, weir_json *v, int depth) {
    if (depth > MAX_DEPTH) { fail(p, "nested too deep (at most 64 levels)"); return false; }
    skip_ws(p);
    if (p->pos >= p->len) { fail(p, "expected a value"); return false; }
    char c = p->s[p->pos];
    switch (c) {
    case '{': return parse_container(p, v, depth, true);
    case '[': return parse_container(p, v, depth, false);
    case '"':
        v->type = WEIR_JSON_STRING;
        v->string = parse_string(p, &v->len);
        return v->string != NULL;
    case 't':
    case 'f':
    case 'n':
        if (literal(p, "true")) { v->type = WEIR_JSON_BOOL; v->boolean = true; return true; }
        if (literal(p, "false")) { v->type = WEIR_JSON_BOOL; v->boolean = false; return true; }
        if (literal(p, "null")) { v->type = WEIR_JSON_NULL; return true; }
        fail(p, "expected a value");
        return false;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            v->type = WEIR_JSON_NUMBER;
            return parse_number(p, &v->number);
        }
        fail(p, "expected a value");
        return false;
    }
}

weir_json *weir_json_parse(const char *text, size_t len, char *err, size_t errlen) {
    parser p = {text, len, 0, err, errlen, false};
    weir_json *v = calloc(1, sizeof *v);
    if (!v) {
        fail(&p, "out of memory");
        return NULL;
    }
    if (parse_value(&p, v, 0)) {
        skip_ws(&p);
        if (p.pos == p.len) return v;
        fail(&p, "unexpected text after the value");
    }
    weir_json_free(v);
    return NULL;
}

static void free_inner(weir_json *v) {
    free(v->string);
    for (size_t i = 0; i < v->count; i++) {
        free_inner(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

void weir_json_free(weir_json *value) {
    if (!value) return;
    free_inner(value);
    free(value);
}

const weir_json *weir_json_get(const weir_json *object, const char *key) {
    if (!object || object->type != WEIR_JSON_OBJECT) return NULL;
    for (size_t i = object->count; i-- > 0;)
        if (strcmp(object->keys[i], key) == 0) return &object->items[i];
    return NULL;
}

const char *weir_json_type_name(weir_json_type type) {
    switch (type) {
    case WEIR_JSON_NULL: return "null";
    case WEIR_JSON_BOOL: return "bool";
    case WEIR_JSON_NUMBER: return "number";
    case WEIR_JSON_STRING: return "string";
    case WEIR_JSON_ARRAY: return "list";
    case WEIR_JSON_OBJECT: return "table";
    }
    return "?";
}

/* ---- typed config ------------------------------------------------------- */

struct weir_config {
    weir_json *root;
    bool *known;          /* per member of root: asked for by a getter */
    char error[512];      /* first error, "" when none */
    char unknown[512];    /* the unknown-key message weir_config_error last built */
    const char **lists;   /* string lists handed out, freed with the config */
    size_t nlists;
    char **asked;         /* every key a getter asked for (copies), for the unknown-key message */
    size_t nasked;
};

weir_config *weir_config_parse(const char *text, size_t len) {
    weir_config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    size_t start = 0;
    while (start < len && (text[start] == ' ' || text[start] == '\n' || text[start] == '\t' || text[start] == '\r'))
        start++;
    char err[200];
    c->root = start == len ? weir_json_parse("{}", 2, err, sizeof err) : weir_json_parse(text, len, err, sizeof err);
    if (!c->root) {
        snprintf(c->error, sizeof c->error, "config is not JSON: %s", err);
    } else if (c->root->type != WEIR_JSON_OBJECT) {
        snprintf(c->error, sizeof c->error, "config must be a table, got %s", weir_json_type_name(c->root->type));
    } else {
        c->known = calloc(c->root->count ? c->root->count : 1, sizeof *c->known);
        if (!c->known) snprintf(c->error, sizeof c->error, "out of memory reading the config");
    }
    return c;
}

void weir_config_free(weir_config *config) {
    if (!config) return;
    for (size_t i = 0; i < config->nlists; i++) free((void *)config->lists[i]);
    free(config->lists);
    for (size_t i = 0; i < config->nasked; i++) free(config->asked[i]);
    free(config->asked);
    free(config->known);
    weir_json_free(config->root);
    free(config);
}

/* The member for `key` (marking every member of that name known), or NULL. */
static const weir_json *member(weir_config *c, const char *key) {
    bool seen = false;
    for (size_t i = 0; i < c->nasked && !seen; i++) seen = strcmp(c->asked[i], key) == 0;
    if (!seen) {
        char **asked = realloc(c->asked, (c->nasked + 1) * sizeof *asked);
        if (asked) {
            c->asked = asked;
            size_t n = strlen(key) + 1;
            if ((asked[c->nasked] = malloc(n)) != NULL) memcpy(asked[c->nasked++], key, n);
        }
    }
    if (!c->root || c->root->type != WEIR_JSON_OBJECT || !c->known) return NULL;
    const weir_json *found = NULL;
    for (size_t i = 0; i < c->root->count; i++) {
        if (strcmp(c->root->keys[i], key) == 0) {
            c->known[i] = true;
            found = &c->root->items[i];
        }
    }
    return found;
}

static void record(weir_config *c, const char *fmt, va_list ap) {
    if (c->error[0]) return;
    vsnprintf(c->error, sizeof c->error, fmt, ap);
}

static void mismatch(weir_config *c, const char *key, const char *want, const weir_json *got) {
    if (c->error[0]) return;
    if (got->type == WEIR_JSON_STRING)
        snprintf(c->error, sizeof c->error, "%s: expected %s, got string \"%.80s\"", key, want, got->string);
    else
        snprintf(c->error, sizeof c->error, "%s: expected %s, got %s", key, want, weir_json_type_name(got->type));
}

int weir_config_fail(weir_config *config, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(config, fmt, ap);
    va_end(ap);
    return -1;
}

const char *weir_config_str(weir_config *config, const char *key, const char *def) {
    const weir_json *v = member(config, key);
    if (!v) return def;
    if (v->type != WEIR_JSON_STRING) { mismatch(config, key, "string", v); return def; }
    return v->string;
}

double weir_config_number(weir_config *config, const char *key, double def) {
    const weir_json *v = member(config, key);
    if (!v) return def;
    if (v->type != WEIR_JSON_NUMBER) { mismatch(config, key, "number", v); return def; }
    return v->number;
}

int64_t weir_config_int(weir_config *config, const char *key, int64_t def) {
    const weir_json *v = member(config, key);
    if (!v) return def;
    if (v->type != WEIR_JSON_NUMBER || v->number != floor(v->number) || v->number < -9223372036854775808.0 ||
        v->number >= 9223372036854775808.0) {
        if (v->type == WEIR_JSON_NUMBER && !config->error[0])
            snprintf(config->error, sizeof config->error, "%s: expected integer, got %g", key, v->number);
        else
            mismatch(config, key, "integer", v);
        return def;
    }
    return (int64_t)v->number;
}

bool weir_config_bool(weir_config *config, const char *key, bool def) {
    const weir_json *v = member(config, key);
    if (!v) return def;
    if (v->type != WEIR_JSON_BOOL) { mismatch(config, key, "bool", v); return def; }
    return v->boolean;
}

weir_strs weir_config_strs(weir_config *config, const char *key, weir_strs def) {
    const weir_json *v = member(config, key);
    if (!v) return def;
    if (v->type != WEIR_JSON_ARRAY) { mismatch(config, key, "list", v); return def; }
    for (size_t i = 0; i < v->count; i++) {
        if (v->items[i].type != WEIR_JSON_STRING) {
            char at[200];
            snprintf(at, sizeof at, "%s[%zu]", key, i);
            mismatch(config, at, "string", &v->items[i]);
            return def;
        }
    }
    const char **list = malloc((v->count ? v->count : 1) * sizeof *list);
    const char **lists = realloc(config->lists, (config->nlists + 1) * sizeof *lists);
    if (!list || !lists) {
        free(list);
        if (lists) config->lists = lists;
        if (!config->error[0]) snprintf(config->error, sizeof config->error, "%s: out of memory", key);
        return def;
    }
    for (size_t i = 0; i < v->count; i++) list[i] = v->items[i].string;
    config->lists = lists;
    config->lists[config->nlists++] = (const char *)list;
    return (weir_strs){list, v->count};
}

const weir_json *weir_config_json(weir_config *config, const char *key) {
    return member(config, key);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *weir_config_error(weir_config *config) {
    if (config->error[0]) return config->error;
    if (!config->root || !config->known) return NULL;
    for (size_t i = 0; i < config->root->count; i++) {
        if (config->known[i]) continue;
        /* Name the keys that were asked for, sorted. */
        if (config->nasked) qsort(config->asked, config->nasked, sizeof *config->asked, by_name);
        int at = snprintf(config->unknown, sizeof config->unknown, "%s: unknown key", config->root->keys[i]);
        for (size_t j = 0; j < config->nasked && at > 0 && (size_t)at < sizeof config->unknown; j++)
            at += snprintf(config->unknown + at, sizeof config->unknown - (size_t)at, "%s%s",
                           j == 0 ? "; expected one of " : ", ", config->asked[j]);
        return config->unknown;
    }
    return NULL;
}
