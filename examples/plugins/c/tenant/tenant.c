/* The example processor in C: every resource gets a `tenant` attribute from
 * `tenant.id` (found on the span, its scope or its resource), and health
 * checks (`GET /health*` spans) are dropped. The same processor exists in
 * Rust, Python and JavaScript (examples/plugins/); all pass
 * examples/plugins/conformance. Matching and the tree walk run on the host
 * (weir:plugin@0.2.0 helpers); C only decides. */

#include <string.h>

#include "weir_plugin.h"

static const char *const DEFAULT_DROP[] = {"GET /health*"};

/* Config: strings point into the config, which lives as long as the instance. */
static const char *from, *to;
static weir_strs drop_names;

int weir_plugin_init(weir_config *config) {
    from = weir_config_str(config, "from", "tenant.id");
    to = weir_config_str(config, "to", "tenant");
    drop_names = weir_config_strs(config, "drop_names", WEIR_STRS(DEFAULT_DROP));
    return 0;
}

int weir_plugin_process(weir_batch *b) {
    /* Everything read here lives in the call's arena: no frees. */
    weir_strs ids = weir_attribute_text(b, WEIR_ITEM, from, true);
    weir_u32s resource_of = weir_ancestors(b, WEIR_ITEM, WEIR_RESOURCE);
    uint32_t resources = weir_count(b, WEIR_RESOURCE);
    bool *tagged = weir_alloc(b, resources + 1);
    memset(tagged, 0, resources + 1);
    for (size_t item = 0; item < ids.len && item < resource_of.len; item++) {
        uint32_t r = resource_of.ptr[item];
        if (ids.ptr[item] && r < resources && !tagged[r]) {
            tagged[r] = true; /* the first item with an id names its resource's tenant */
            weir_set_attribute(b, WEIR_RESOURCE, r, to, weir_val_str(ids.ptr[item]));
        }
    }
    if (weir_batch_signal(b) == WEIR_TRACES && drop_names.len)
        weir_drop_items(b, weir_select_field(b, WEIR_ITEM, WEIR_FIELD_NAME, weir_glob(drop_names)));
    return 0;
}
