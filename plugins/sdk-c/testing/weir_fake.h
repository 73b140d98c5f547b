/* weir_fake.h — an in-memory batch for native unit tests of C plugins.
 *
 * It implements the functions the generated bindings import (the
 * weir_plugin_types_method_batch_* calls, the list *_free helpers and the
 * borrow drop), so a plugin's weir_plugin_init/weir_plugin_process run under
 * a native gcc or clang build, without a component:
 *
 *     weir_fake *f = weir_fake_new(WEIR_TRACES);
 *     uint32_t r = weir_fake_resource(f);
 *     weir_fake_attr(f, WEIR_RESOURCE, r, "tenant.id", weir_val_str("acme"));
 *     weir_fake_span(f, r, "GET /health");
 *     assert(weir_fake_init(f, "{}") == NULL);
 *     assert(weir_fake_process(f) == NULL);
 *     assert(weir_fake_dropped(f, 0));
 *     weir_fake_free(f);
 *
 * Link the plugin with src/weir_plugin.c, src/weir_json.c and this file (not
 * gen/plugin.c). It covers resources, scopes, spans or log records, span
 * events and links; attributes of every kind; names, bodies and the other
 * settable fields; the host's matchers and inherited reads; and the host's
 * edit rules (every edit checked before any applies). Like the host, it fails
 * a call that leaves the borrowed batch undropped ("borrow handles still
 * remain at the end of the call") and counts the lists it handed out that the
 * plugin did not free. weir itself is the authority: run `weir plugin test`
 * on the built component too.
 */
#ifndef WEIR_FAKE_H
#define WEIR_FAKE_H

#include "weir_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_fake weir_fake;

weir_fake *weir_fake_new(weir_signal signal);
void weir_fake_free(weir_fake *f);

/* A resource with one scope under it; returns the resource's index. */
uint32_t weir_fake_resource(weir_fake *f);
/* Another scope under `resource`; returns the scope's index. */
uint32_t weir_fake_scope(weir_fake *f, uint32_t resource);
/* A span under the last scope of `resource`; returns the item's index. */
uint32_t weir_fake_span(weir_fake *f, uint32_t resource, const char *name);
/* A log record (body: any value, or weir_val_str(...)). */
uint32_t weir_fake_log(weir_fake *f, uint32_t resource, weir_value body);
uint32_t weir_fake_event(weir_fake *f, uint32_t item, const char *name);
uint32_t weir_fake_link(weir_fake *f, uint32_t item);
/* Sets an attribute of any entity (values are copied). */
void weir_fake_attr(weir_fake *f, weir_level level, uint32_t entity, const char *key, weir_value v);
/* Sets a plain field's raw column bytes (e.g. a trace id). */
void weir_fake_field(weir_fake *f, weir_level level, uint32_t entity, weir_field field, const void *bytes, size_t len);

/* Runs the plugin's init with this JSON config: NULL, or the error message. */
const char *weir_fake_init(weir_fake *f, const char *config_json);
/* One process call, as weir makes it (sequence counts up). NULL, or why the
 * call failed: the plugin's error, or a contract breach (borrow not dropped).
 * Queued changes apply only when the call succeeds. */
const char *weir_fake_process(weir_fake *f);

/* What the batch looks like now. Text of an attribute or plain field (NULL
 * when absent); owned by the fake, valid until the next change. */
const char *weir_fake_attr_text(weir_fake *f, weir_level level, uint32_t entity, const char *key);
const char *weir_fake_name(weir_fake *f, weir_level level, uint32_t entity);
bool weir_fake_dropped(weir_fake *f, uint32_t item);
/* The route last given to an item, or NULL. */
const char *weir_fake_route(weir_fake *f, uint32_t item);
/* Host lists handed to the plugin and not freed yet (0 after a call the
 * kit handled). */
size_t weir_fake_outstanding(weir_fake *f);
/* Host calls made by the plugin so far. */
size_t weir_fake_calls(weir_fake *f);

#ifdef __cplusplus
}
#endif

#endif
