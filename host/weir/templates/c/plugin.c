/* {{name}}: a weir plugin in C (weir:plugin@0.2.0). It masks email addresses
 * in span attributes and drops health-check spans; change weir_plugin_process.
 * The kit (weir-c/include/weir_plugin.h) says who frees what: in short,
 * nothing here is freed by hand — the call's arena takes it all back. */

#include "weir_plugin.h"

static const char *const DEFAULT_DROP[] = {"GET /health*"};
static const char *const EMAIL[] = {"*@*"};

/* Config values point into the config, which lives as long as the instance. */
static weir_strs drop_names;
static const char *mask;

int weir_plugin_init(weir_config *config) {
    drop_names = weir_config_strs(config, "drop_names", WEIR_STRS(DEFAULT_DROP));
    mask = weir_config_str(config, "mask", "***");
    return 0; /* a bad type or an unknown key rejects the config, naming the key */
}

int weir_plugin_process(weir_batch *b) {
    /* Matching runs on the host: one call each, no loop over spans here. */
    weir_u32s emails = weir_select_attribute(b, WEIR_ITEM, "user.email", weir_glob(WEIR_STRS(EMAIL)), false);
    weir_set_attribute_many(b, WEIR_ITEM, emails, "user.email", weir_val_str(mask));
    if (weir_batch_signal(b) == WEIR_TRACES && drop_names.len)
        weir_drop_items(b, weir_select_field(b, WEIR_ITEM, WEIR_FIELD_NAME, weir_glob(drop_names)));
    return 0;
}
