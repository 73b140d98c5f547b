/* The example processor on the kit's fake batch, natively (make test). */

#include <stdio.h>
#include <string.h>

#include "weir_fake.h"

static int failures;

#define EXPECT(cond)                                                   \
    do {                                                               \
        if (!(cond)) {                                                 \
            failures++;                                                \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                              \
    } while (0)

static bool same(const char *a, const char *b) {
    return a && b && strcmp(a, b) == 0;
}

static void tenants_are_set_and_health_checks_dropped(void) {
    weir_fake *f = weir_fake_new(WEIR_TRACES);
    uint32_t shop = weir_fake_resource(f);
    weir_fake_attr(f, WEIR_RESOURCE, shop, "tenant.id", weir_val_str("acme"));
    weir_fake_span(f, shop, "GET /cart");
    weir_fake_span(f, shop, "GET /healthz");
    uint32_t billing = weir_fake_resource(f);
    weir_fake_attr(f, WEIR_RESOURCE, billing, "service.name", weir_val_str("billing"));
    uint32_t charge = weir_fake_span(f, billing, "charge");
    weir_fake_attr(f, WEIR_ITEM, charge, "tenant.id", weir_val_int(42));
    EXPECT(weir_fake_init(f, "{}") == NULL);
    EXPECT(weir_fake_process(f) == NULL);
    EXPECT(same(weir_fake_attr_text(f, WEIR_RESOURCE, shop, "tenant"), "acme"));
    EXPECT(same(weir_fake_attr_text(f, WEIR_RESOURCE, billing, "tenant"), "42"));
    EXPECT(weir_fake_dropped(f, 1) && !weir_fake_dropped(f, 0) && !weir_fake_dropped(f, 2));
    EXPECT(weir_fake_outstanding(f) == 0);
    weir_fake_free(f);
}

static void config_is_checked(void) {
    weir_fake *f = weir_fake_new(WEIR_TRACES);
    uint32_t r = weir_fake_resource(f);
    weir_fake_attr(f, WEIR_RESOURCE, r, "org", weir_val_str("initech"));
    weir_fake_span(f, r, "GET /ready");
    weir_fake_span(f, r, "GET /healthz");
    EXPECT(same(weir_fake_init(f, "{\"drop_names\": \"GET /health\"}"),
                "drop_names: expected list, got string \"GET /health\""));
    EXPECT(same(weir_fake_init(f, "{\"to\": 1}"), "to: expected string, got number"));
    EXPECT(weir_fake_init(f, "{\"from\": \"org\", \"to\": \"customer\", \"drop_names\": [\"GET /ready\"]}") == NULL);
    EXPECT(weir_fake_process(f) == NULL);
    EXPECT(same(weir_fake_attr_text(f, WEIR_RESOURCE, r, "customer"), "initech"));
    EXPECT(weir_fake_dropped(f, 0) && !weir_fake_dropped(f, 1));
    weir_fake_free(f);
}

static void logs_get_tenants_and_nothing_is_dropped(void) {
    weir_fake *f = weir_fake_new(WEIR_LOGS);
    uint32_t r = weir_fake_resource(f);
    uint32_t rec = weir_fake_log(f, r, weir_val_str("GET /health"));
    weir_fake_attr(f, WEIR_ITEM, rec, "tenant.id", weir_val_str("acme"));
    EXPECT(weir_fake_init(f, "{}") == NULL);
    EXPECT(weir_fake_process(f) == NULL);
    EXPECT(same(weir_fake_attr_text(f, WEIR_RESOURCE, r, "tenant"), "acme"));
    EXPECT(!weir_fake_dropped(f, 0));
    weir_fake_free(f);
}

int main(void) {
    tenants_are_set_and_health_checks_dropped();
    config_is_checked();
    logs_get_tenants_and_nothing_is_dropped();
    if (failures) return 1;
    printf("test_tenant: ok\n");
    return 0;
}
