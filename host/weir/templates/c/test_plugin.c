/* Runs the plugin natively on the kit's in-memory batch: `make test`. */

#include <stdio.h>
#include <string.h>

#include "weir_fake.h"

static int failures;

#define EXPECT(cond)                                                            \
    do {                                                                        \
        if (!(cond)) {                                                          \
            failures++;                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                       \
    } while (0)

int main(void) {
    weir_fake *f = weir_fake_new(WEIR_TRACES);
    uint32_t shop = weir_fake_resource(f);
    weir_fake_attr(f, WEIR_RESOURCE, shop, "service.name", weir_val_str("shop"));
    uint32_t cart = weir_fake_span(f, shop, "GET /cart");
    weir_fake_attr(f, WEIR_ITEM, cart, "user.email", weir_val_str("ada@example.com"));
    uint32_t health = weir_fake_span(f, shop, "GET /healthz");

    EXPECT(weir_fake_init(f, "{}") == NULL);
    EXPECT(weir_fake_process(f) == NULL);
    const char *email = weir_fake_attr_text(f, WEIR_ITEM, cart, "user.email");
    EXPECT(email && strcmp(email, "***") == 0);
    EXPECT(weir_fake_dropped(f, health) && !weir_fake_dropped(f, cart));

    const char *err = weir_fake_init(f, "{\"mask\": 3}");
    EXPECT(err && strcmp(err, "mask: expected string, got number") == 0);
    weir_fake_free(f);
    if (failures) return 1;
    printf("test_plugin: ok\n");
    return 0;
}
