/* The kit's accessors, edit queue and arena, natively on the fake batch. The
 * plugin under test is defined here: `mode` picks what its process does, and
 * what it read is kept in `seen` (copied out of the arena). */

#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "weir_fake.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEIR_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WEIR_ASAN 1
#endif
#ifdef WEIR_ASAN
size_t __sanitizer_get_current_allocated_bytes(void); /* sanitizer/allocator_interface.h */
static size_t allocated_bytes(void) {
    return __sanitizer_get_current_allocated_bytes();
}
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
static size_t allocated_bytes(void) {
    return mallinfo2().uordblks;
}
#else
static size_t allocated_bytes(void) {
    return 0; /* no allocator statistics here: the arena check passes vacuously */
}
#endif

enum { READS, EDITS, FAIL_AFTER_EDITS, BAD_EDIT, BAD_DROP, SELECTS, LOGS, NOTHING };

static int mode;
static const char *cfg_key;
static int64_t cfg_limit;

/* What the last process call saw, as plain text lines, e.g. "len=3". */
static char seen[4096];

static void note(const char *fmt, const char *s) {
    size_t at = strlen(seen);
    snprintf(seen + at, sizeof seen - at, fmt, s);
}

static void note_u32s(const char *name, weir_u32s l) {
    char buf[256] = "";
    size_t at = 0;
    for (size_t i = 0; i < l.len && at < sizeof buf - 12; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%u", i ? "," : "", (unsigned)l.ptr[i]);
    size_t s = strlen(seen);
    snprintf(seen + s, sizeof seen - s, "%s=%s;", name, buf);
}

static void note_strs(const char *name, weir_strs l) {
    size_t s = strlen(seen);
    s += (size_t)snprintf(seen + s, sizeof seen - s, "%s=", name);
    for (size_t i = 0; i < l.len; i++)
        s += (size_t)snprintf(seen + s, sizeof seen - s, "%s%s", i ? "," : "", l.ptr[i] ? l.ptr[i] : "-");
    snprintf(seen + s, sizeof seen - s, ";");
}

int weir_plugin_init(weir_config *config) {
    cfg_key = weir_config_str(config, "key", "tenant.id");
    cfg_limit = weir_config_int(config, "limit", 10);
    if (cfg_limit < 0) return weir_config_fail(config, "limit: must not be negative, got %lld", (long long)cfg_limit);
    return 0;
}

static const char *const HEALTH[] = {"GET /health*"};
static const char *const EXACT[] = {"charge", "nope"};

int weir_plugin_process(weir_batch *b) {
    seen[0] = 0;
    switch (mode) {
    case READS: {
        char line[128];
        snprintf(line, sizeof line, "signal=%d;len=%u;res=%u;scopes=%u;events=%u;seq=%llu;", (int)weir_batch_signal(b),
                 (unsigned)weir_batch_len(b), (unsigned)weir_count(b, WEIR_RESOURCE), (unsigned)weir_count(b, WEIR_SCOPE),
                 (unsigned)weir_count(b, WEIR_EVENT), (unsigned long long)weir_batch_sequence(b));
        note("%s", line);
        note_u32s("owners", weir_owners(b, WEIR_ITEM));
        note_u32s("res_of_item", weir_ancestors(b, WEIR_ITEM, WEIR_RESOURCE));
        note_u32s("item_of_event", weir_ancestors(b, WEIR_EVENT, WEIR_ITEM));
        note_u32s("not_above", weir_ancestors(b, WEIR_RESOURCE, WEIR_ITEM));
        note_strs("names", weir_field_text(b, WEIR_ITEM, WEIR_FIELD_NAME));
        note_strs("trace", weir_field_text(b, WEIR_ITEM, WEIR_FIELD_TRACE_ID));
        note_strs("kind", weir_field_text(b, WEIR_ITEM, WEIR_FIELD_KIND));
        note_strs("own", weir_attribute_text(b, WEIR_ITEM, cfg_key, false));
        note_strs("inherited", weir_attribute_text(b, WEIR_ITEM, cfg_key, true));
        note_strs("event_inherited", weir_attribute_text(b, WEIR_EVENT, cfg_key, true));
        note_strs("n", weir_attribute_text(b, WEIR_ITEM, "n", false));
        weir_values v = weir_attribute(b, WEIR_ITEM, "n");
        if (v.len == 3) {
            snprintf(line, sizeof line, "kinds=%d,%d,%d;i=%lld;d=%g;", v.ptr[0].kind, v.ptr[1].kind, v.ptr[2].kind,
                     (long long)v.ptr[0].i, v.ptr[1].d);
            note("%s", line);
        }
        weir_attr_table t = weir_attributes(b, WEIR_RESOURCE);
        for (size_t e = 0; e < t.len; e++) {
            snprintf(line, sizeof line, "res%zu:", e);
            note("%s", line);
            for (size_t a = 0; a < t.ptr[e].len; a++) {
                note("%s=", t.ptr[e].ptr[a].key);
                note("%s,", weir_value_text(b, &t.ptr[e].ptr[a].value));
            }
            note("%s", ";");
        }
        weir_values start = weir_field_values(b, WEIR_ITEM, WEIR_FIELD_START_TIME);
        snprintf(line, sizeof line, "start=%d;", start.len ? (int)start.ptr[0].kind : -1);
        note("%s", line);
        return 0;
    }
    case EDITS: {
        weir_set_attribute(b, WEIR_RESOURCE, 0, "tenant", weir_val_str("acme"));
        uint32_t many[] = {0, 1};
        weir_set_attribute_many(b, WEIR_ITEM, (weir_u32s){many, 2}, "checked", weir_val_bool(true));
        weir_set_attribute(b, WEIR_ITEM, 2, "n", weir_val_int(-5));
        weir_set_attribute(b, WEIR_ITEM, 2, "ratio", weir_val_double(0.25));
        weir_set_attribute(b, WEIR_ITEM, 2, "tags", weir_val_json("[1,2]"));
        weir_remove_attribute(b, WEIR_RESOURCE, 0, "tenant.id");
        char name[32];
        snprintf(name, sizeof name, "renamed-%d", 1);
        weir_set_field(b, WEIR_ITEM, 0, WEIR_FIELD_NAME, weir_val_str(name));
        memset(name, 'x', sizeof name - 1); /* edits copied what they need */
        weir_set_field(b, WEIR_EVENT, 0, WEIR_FIELD_NAME, weir_val_str("exception"));
        weir_drop(b, 1);
        uint32_t routed[] = {2};
        weir_route(b, "billing", (weir_u32s){routed, 1});
        return 0;
    }
    case FAIL_AFTER_EDITS:
        weir_set_attribute(b, WEIR_RESOURCE, 0, "tenant", weir_val_str("nope"));
        weir_drop(b, 0);
        return weir_fail(b, "cannot work on %s", "this");
    case BAD_EDIT:
        weir_set_attribute(b, WEIR_RESOURCE, 0, "tenant", weir_val_str("nope"));
        weir_set_field(b, WEIR_ITEM, 0, WEIR_FIELD_NAME, weir_val_str("fine"));
        weir_set_field(b, WEIR_ITEM, 0, WEIR_FIELD_KIND, weir_val_str("not an int"));
        return 0;
    case BAD_DROP:
        weir_drop(b, 99);
        return 0;
    case SELECTS:
        note_u32s("health", weir_select_field(b, WEIR_ITEM, WEIR_FIELD_NAME, weir_glob(WEIR_STRS(HEALTH))));
        note_u32s("exact", weir_select_field(b, WEIR_ITEM, WEIR_FIELD_NAME, weir_any_of(WEIR_STRS(EXACT))));
        note_u32s("own_present", weir_select_attribute(b, WEIR_ITEM, cfg_key, weir_present(), false));
        note_u32s("inh_present", weir_select_attribute(b, WEIR_ITEM, cfg_key, weir_present(), true));
        note_u32s("inh_absent", weir_select_attribute(b, WEIR_ITEM, cfg_key, weir_absent(), true));
        {
            static const char *const NUM[] = {"4?"};
            note_u32s("n_glob", weir_select_attribute(b, WEIR_ITEM, "n", weir_glob(WEIR_STRS(NUM)), false));
        }
        weir_drop_items(b, weir_select_field(b, WEIR_ITEM, WEIR_FIELD_NAME, weir_glob(WEIR_STRS(HEALTH))));
        return 0;
    case LOGS: {
        weir_values body = weir_field_values(b, WEIR_ITEM, WEIR_FIELD_BODY);
        char line[128];
        snprintf(line, sizeof line, "bodies=%zu:%d,%d;", body.len, body.len ? (int)body.ptr[0].kind : -1,
                 body.len > 1 ? (int)body.ptr[1].kind : -1);
        note("%s", line);
        note_strs("body", weir_field_text(b, WEIR_ITEM, WEIR_FIELD_BODY));
        weir_set_field(b, WEIR_ITEM, 1, WEIR_FIELD_BODY, weir_val_str("filled"));
        weir_set_field(b, WEIR_ITEM, 0, WEIR_FIELD_SEVERITY_NUMBER, weir_val_int(9));
        return 0;
    }
    default: return 0;
    }
}

/* Two resources; items 0, 1 (health) under resource 0, item 2 under 1; an
 * event on item 2. */
static weir_fake *shop(void) {
    weir_fake *f = weir_fake_new(WEIR_TRACES);
    uint32_t r0 = weir_fake_resource(f);
    weir_fake_attr(f, WEIR_RESOURCE, r0, "tenant.id", weir_val_str("acme"));
    weir_fake_attr(f, WEIR_RESOURCE, r0, "service.name", weir_val_str("shop"));
    uint32_t a = weir_fake_span(f, r0, "GET /cart");
    weir_fake_span(f, r0, "GET /healthz");
    uint32_t r1 = weir_fake_resource(f);
    weir_fake_attr(f, WEIR_RESOURCE, r1, "weight", weir_val_double(1.5));
    uint32_t c = weir_fake_span(f, r1, "charge");
    weir_fake_attr(f, WEIR_ITEM, c, "tenant.id", weir_val_int(42));
    weir_fake_event(f, c, "retry");
    weir_fake_attr(f, WEIR_ITEM, a, "n", weir_val_int(41));
    weir_fake_attr(f, WEIR_ITEM, 1, "n", weir_val_double(2.5));
    weir_fake_attr(f, WEIR_ITEM, c, "n", weir_val_bool(true));
    const uint8_t tid[16] = {0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff};
    weir_fake_field(f, WEIR_ITEM, a, WEIR_FIELD_TRACE_ID, tid, 16);
    const uint8_t kind[4] = {2, 0, 0, 0};
    weir_fake_field(f, WEIR_ITEM, a, WEIR_FIELD_KIND, kind, 4);
    return f;
}

static void init_errors(void) {
    weir_fake *f = shop();
    CHECK_STR(weir_fake_init(f, "{\"key\": 3}"), "key: expected string, got number");
    CHECK_STR(weir_fake_init(f, "{\"colour\": \"red\"}"), "colour: unknown key; expected one of key, limit");
    CHECK_STR(weir_fake_init(f, "{\"limit\": -1}"), "limit: must not be negative, got -1");
    CHECK_STR(weir_fake_init(f, "{\"limit\": 1.5}"), "limit: expected integer, got 1.5");
    CHECK_STR(weir_fake_init(f, "not json"), "config is not JSON: at byte 0: expected a value");
    CHECK_STR(weir_fake_init(f, ""), NULL);
    CHECK_STR(weir_fake_init(f, "{\"key\": \"tenant.id\", \"limit\": 3}"), NULL);
    CHECK(cfg_limit == 3);
    weir_fake_free(f);
}

static void reads(void) {
    weir_fake *f = shop();
    CHECK_STR(weir_fake_init(f, "{}"), NULL);
    mode = READS;
    CHECK_STR(weir_fake_process(f), NULL);
    CHECK(weir_fake_outstanding(f) == 0);
    CHECK(strstr(seen, "signal=0;len=3;res=2;scopes=2;events=1;seq=0;") != NULL);
    CHECK(strstr(seen, "owners=0,0,1;") != NULL);
    CHECK(strstr(seen, "res_of_item=0,0,1;") != NULL);
    CHECK(strstr(seen, "item_of_event=2;") != NULL);
    CHECK(strstr(seen, "not_above=;") != NULL);
    CHECK(strstr(seen, "names=GET /cart,GET /healthz,charge;") != NULL);
    CHECK(strstr(seen, "trace=ab0102030405060708090a0b0c0d0eff,-,-;") != NULL);
    CHECK(strstr(seen, "kind=2,-,-;") != NULL);
    CHECK(strstr(seen, "own=-,-,42;") != NULL);
    CHECK(strstr(seen, "inherited=acme,acme,42;") != NULL);
    CHECK(strstr(seen, "event_inherited=42;") != NULL);
    CHECK(strstr(seen, "n=41,2.5,true;") != NULL);
    CHECK(strstr(seen, "kinds=2,3,4;i=41;d=2.5;") != NULL);
    CHECK(strstr(seen, "res0:tenant.id=acme,service.name=shop,;res1:weight=1.5,;") != NULL);
    CHECK(strstr(seen, "start=0;") != NULL); /* unset times read as absent */
    CHECK_STR(weir_fake_process(f), NULL);
    CHECK(strstr(seen, "seq=1;") != NULL);
    if (check_failures) fprintf(stderr, "seen: %s\n", seen);
    weir_fake_free(f);
}

static void edits(void) {
    weir_fake *f = shop();
    CHECK_STR(weir_fake_init(f, "{}"), NULL);
    mode = EDITS;
    CHECK_STR(weir_fake_process(f), NULL);
    CHECK(weir_fake_outstanding(f) == 0);
    CHECK_STR(weir_fake_attr_text(f, WEIR_RESOURCE, 0, "tenant"), "acme");
    CHECK_STR(weir_fake_attr_text(f, WEIR_RESOURCE, 0, "tenant.id"), NULL);
    CHECK_STR(weir_fake_attr_text(f, WEIR_ITEM, 0, "checked"), "true");
    CHECK_STR(weir_fake_attr_text(f, WEIR_ITEM, 1, "checked"), "true");
    CHECK_STR(weir_fake_attr_text(f, WEIR_ITEM, 2, "checked"), NULL);
    CHECK_STR(weir_fake_attr_text(f, WEIR_ITEM, 2, "n"), "-5");
    CHECK_STR(weir_fake_attr_text(f, WEIR_ITEM, 2, "ratio"), "0.25");
    CHECK_STR(weir_fake_attr_text(f, WEIR_ITEM, 2, "tags"), "[1,2]");
    CHECK_STR(weir_fake_name(f, WEIR_ITEM, 0), "renamed-1");
    CHECK_STR(weir_fake_name(f, WEIR_EVENT, 0), "exception");
    CHECK(weir_fake_dropped(f, 1) && !weir_fake_dropped(f, 0) && !weir_fake_dropped(f, 2));
    CHECK_STR(weir_fake_route(f, 2), "billing");
    CHECK_STR(weir_fake_route(f, 0), NULL);
    weir_fake_free(f);
}

static void failures_apply_nothing(void) {
    weir_fake *f = shop();
    CHECK_STR(weir_fake_init(f, "{}"), NULL);
    mode = FAIL_AFTER_EDITS;
    CHECK_STR(weir_fake_process(f), "cannot work on this");
    CHECK_STR(weir_fake_attr_text(f, WEIR_RESOURCE, 0, "tenant"), NULL);
    CHECK(!weir_fake_dropped(f, 0));
    mode = BAD_EDIT; /* a wrong type after two valid edits: none applies */
    CHECK_STR(weir_fake_process(f), "edit 2: that field takes a 32-bit int");
    CHECK_STR(weir_fake_attr_text(f, WEIR_RESOURCE, 0, "tenant"), NULL);
    CHECK_STR(weir_fake_name(f, WEIR_ITEM, 0), "GET /cart");
    CHECK(weir_fake_outstanding(f) == 0);
    mode = BAD_DROP;
    CHECK_STR(weir_fake_process(f), "dropping items: item 99 does not exist");
    CHECK(weir_fake_outstanding(f) == 0);
    weir_fake_free(f);
}

static void selects(void) {
    weir_fake *f = shop();
    CHECK_STR(weir_fake_init(f, "{}"), NULL);
    mode = SELECTS;
    CHECK_STR(weir_fake_process(f), NULL);
    CHECK(strstr(seen, "health=1;") != NULL);
    CHECK(strstr(seen, "exact=2;") != NULL);
    CHECK(strstr(seen, "own_present=2;") != NULL);
    CHECK(strstr(seen, "inh_present=0,1,2;") != NULL);
    CHECK(strstr(seen, "inh_absent=;") != NULL);
    CHECK(strstr(seen, "n_glob=0;") != NULL);
    CHECK(weir_fake_dropped(f, 1) && !weir_fake_dropped(f, 0));
    if (check_failures) fprintf(stderr, "seen: %s\n", seen);
    weir_fake_free(f);
}

static void logs(void) {
    weir_fake *f = weir_fake_new(WEIR_LOGS);
    uint32_t r = weir_fake_resource(f);
    weir_fake_log(f, r, weir_val_str("hello"));
    weir_value none = {WEIR_ABSENT, NULL, 0, 0, 0, false};
    weir_fake_log(f, r, none);
    CHECK_STR(weir_fake_init(f, "{}"), NULL);
    mode = LOGS;
    CHECK_STR(weir_fake_process(f), NULL);
    CHECK(strstr(seen, "bodies=2:1,0;") != NULL);
    CHECK(strstr(seen, "body=hello,-;") != NULL);
    mode = READS;
    CHECK_STR(weir_fake_process(f), NULL);
    CHECK(strstr(seen, "signal=1;len=2;") != NULL);
    weir_fake_free(f);
}

static void doubles(void) {
    const struct {
        double d;
        const char *text;
    } cases[] = {{1.0, "1"},         {0.1, "0.1"},     {-2.5, "-2.5"}, {0.0, "0"},
                 {1e21, "1000000000000000000000"}, {1.5e-7, "0.00000015"}, {123.456, "123.456"},
                 {1.0 / 3, "0.3333333333333333"}, {NAN, "NaN"}, {-INFINITY, "-inf"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[400];
        weir_format_double(buf, sizeof buf, cases[i].d);
        CHECK_STR(buf, cases[i].text);
    }
}

/* Many calls leave the heap where one call left it: the arena freed it all. */
static void arena_frees_everything(void) {
    weir_fake *f = shop();
    for (int i = 0; i < 40; i++) weir_fake_span(f, 0, i % 2 ? "GET /health" : "GET /item");
    CHECK_STR(weir_fake_init(f, "{}"), NULL);
    const int modes[] = {READS, SELECTS, EDITS};
    for (size_t m = 0; m < 3; m++) {
        mode = modes[m];
        CHECK_STR(weir_fake_process(f), NULL); /* warm up: the fake's own state settles */
        CHECK_STR(weir_fake_process(f), NULL);
        size_t before = allocated_bytes();
        for (int i = 0; i < 500; i++) {
            if (weir_fake_process(f) != NULL) break;
        }
        size_t after = allocated_bytes();
        CHECK(after == before);
        if (after != before) fprintf(stderr, "mode %d: heap %zu -> %zu bytes\n", modes[m], before, after);
        CHECK(weir_fake_outstanding(f) == 0);
    }
    weir_fake_free(f);
}

int main(void) {
    init_errors();
    reads();
    edits();
    failures_apply_nothing();
    selects();
    logs();
    doubles();
    arena_frees_everything();
    return check_report("test_kit");
}
