package main

import (
	"testing"

	"weir.dev/plugin"
	"weir.dev/plugin/plugintest"
)

func TestMasksEmailsAndDropsHealthChecks(t *testing.T) {
	b := plugintest.Traces()
	r := b.Resource(plugintest.Attrs{"service.name": "shop"})
	b.Span(r, "GET /cart", plugintest.Attrs{"user.email": "ada@example.com"})
	b.Span(r, "GET /healthz", nil)
	if err := b.Run(New, `{}`); err != nil {
		t.Fatal(err)
	}
	if got := b.Attr(plugin.LevelItem, 0, "user.email").Str(); got != "***" {
		t.Errorf("user.email = %q, want it masked", got)
	}
	if got := b.Dropped(); len(got) != 1 || got[0] != 1 {
		t.Errorf("dropped %v, want the health check only", got)
	}
}
