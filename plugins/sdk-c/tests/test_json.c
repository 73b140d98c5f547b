/* The JSON reader and the typed config reader, natively. */

#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "weir_json.h"

static weir_json *parse(const char *text, char *err) {
    return weir_json_parse(text, strlen(text), err, 200);
}

static void values(void) {
    char err[200];
    weir_json *v = parse(" {\"a\": [1, -2.5e2, true, false, null], \"s\": \"x\\\"y\\u00e9\\ud83d\\ude00\\n\", "
                         "\"o\": {}, \"e\": [], \"a\": 0} ",
                         err);
    CHECK(v != NULL);
    if (!v) return;
    CHECK(v->type == WEIR_JSON_OBJECT && v->count == 5);
    const weir_json *a = weir_json_get(v, "a");
    CHECK(a && a->type == WEIR_JSON_NUMBER && a->number == 0); /* the last repeat wins */
    const weir_json *first = &v->items[0];
    CHECK(first->type == WEIR_JSON_ARRAY && first->count == 5);
    CHECK(first->items[0].number == 1 && first->items[1].number == -250);
    CHECK(first->items[2].type == WEIR_JSON_BOOL && first->items[2].boolean);
    CHECK(first->items[3].type == WEIR_JSON_BOOL && !first->items[3].boolean);
    CHECK(first->items[4].type == WEIR_JSON_NULL);
    const weir_json *s = weir_json_get(v, "s");
    CHECK_STR(s ? s->string : NULL, "x\"y\xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK(s && s->len == strlen("x\"y\xc3\xa9\xf0\x9f\x98\x80\n"));
    CHECK(weir_json_get(v, "o")->type == WEIR_JSON_OBJECT && weir_json_get(v, "o")->count == 0);
    CHECK(weir_json_get(v, "e")->type == WEIR_JSON_ARRAY && weir_json_get(v, "e")->count == 0);
    CHECK(weir_json_get(v, "missing") == NULL);
    weir_json_free(v);

    weir_json *nul = weir_json_parse("\"a\\u0000b\"", 10, err, sizeof err);
    CHECK(nul && nul->len == 3 && nul->string[1] == 0);
    weir_json_free(nul);
}

static void errors(void) {
    char err[200];
    const char *bad[][2] = {
        {"", "at byte 0: expected a value"},
        {"{\"a\" 1}", "at byte 5: expected ':'"},
        {"[1 2]", "at byte 3: expected ',' or ']'"},
        {"{\"a\": 1,}", "at byte 8: expected a string key"},
        {"\"abc", "at byte 4: unterminated string"},
        {"01", "at byte 1: unexpected text after the value"},
        {"1.", "at byte 2: expected a digit after '.'"},
        {"tru", "at byte 0: expected a value"},
        {"\"\\x\"", "at byte 2: unknown escape in string"},
        {"\"\\ud800\"", "at byte 7: unpaired surrogate in \\u escape"},
        {"{} x", "at byte 3: unexpected text after the value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        weir_json *v = parse(bad[i][0], err);
        CHECK(v == NULL);
        weir_json_free(v);
        CHECK_STR(err, bad[i][1]);
    }
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    weir_json *v = weir_json_parse(deep, sizeof deep, err, sizeof err);
    CHECK(v == NULL);
    CHECK(strstr(err, "nested too deep") != NULL);
}

static const char *const DEFAULT_DROP[] = {"GET /health*"};

static const char *read_tenant(const char *text, const char **from, weir_strs *drop) {
    static weir_config *cfg; /* kept so the returned pointers stay valid for the checks */
    weir_config_free(cfg);
    cfg = weir_config_parse(text, strlen(text));
    *from = weir_config_str(cfg, "from", "tenant.id");
    weir_config_str(cfg, "to", "tenant");
    *drop = weir_config_strs(cfg, "drop_names", (weir_strs){DEFAULT_DROP, 1});
    return weir_config_error(cfg);
}

static void config(void) {
    const char *from;
    weir_strs drop;
    CHECK_STR(read_tenant("{}", &from, &drop), NULL);
    CHECK_STR(from, "tenant.id");
    CHECK(drop.len == 1 && drop.ptr == DEFAULT_DROP);
    CHECK_STR(read_tenant("", &from, &drop), NULL);
    CHECK_STR(read_tenant("{\"from\": \"org\", \"drop_names\": [\"a\", \"b*\"]}", &from, &drop), NULL);
    CHECK_STR(from, "org");
    CHECK(drop.len == 2);
    CHECK_STR(drop.len == 2 ? drop.ptr[1] : NULL, "b*");
    CHECK_STR(read_tenant("{\"drop_names\": []}", &from, &drop), NULL);
    CHECK(drop.len == 0);
    CHECK_STR(read_tenant("{\"drop_names\": \"GET /health\"}", &from, &drop),
              "drop_names: expected list, got string \"GET /health\"");
    CHECK(drop.ptr == DEFAULT_DROP);
    CHECK_STR(read_tenant("{\"drop_names\": [\"a\", 3]}", &from, &drop), "drop_names[1]: expected string, got number");
    CHECK_STR(read_tenant("{\"from\": 7}", &from, &drop), "from: expected string, got number");
    CHECK_STR(read_tenant("{\"to\": null}", &from, &drop), "to: expected string, got null");
    CHECK_STR(read_tenant("{\"colour\": \"red\"}", &from, &drop),
              "colour: unknown key; expected one of drop_names, from, to");
    CHECK_STR(read_tenant("[1]", &from, &drop), "config must be a table, got list");
    CHECK_STR(read_tenant("{\"from\": }", &from, &drop), "config is not JSON: at byte 9: expected a value");
    read_tenant("{}", &from, &drop);

    const char *text = "{\"n\": 2.5, \"i\": 42, \"f\": 1.5, \"b\": true, \"t\": {\"k\": 1}}";
    weir_config *c = weir_config_parse(text, strlen(text));
    CHECK(weir_config_number(c, "n", 0) == 2.5);
    CHECK(weir_config_int(c, "i", 0) == 42);
    CHECK(weir_config_bool(c, "b", false));
    const weir_json *t = weir_config_json(c, "t");
    CHECK(t && weir_json_get(t, "k")->number == 1);
    CHECK(weir_config_int(c, "absent", 9) == 9);
    CHECK_STR(weir_config_error(c), "f: unknown key; expected one of absent, b, i, n, t");
    CHECK(weir_config_int(c, "f", 3) == 3);
    CHECK_STR(weir_config_error(c), "f: expected integer, got 1.5");
    weir_config_free(c);

    c = weir_config_parse("{}", 2);
    CHECK(weir_config_fail(c, "limit: must be below %d", 10) == -1);
    CHECK_STR(weir_config_error(c), "limit: must be below 10");
    weir_config_free(c);
}

int main(void) {
    values();
    errors();
    config();
    return check_report("test_json");
}
