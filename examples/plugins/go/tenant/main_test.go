package main

import (
	"strings"
	"testing"

	"weir.dev/plugin"
	"weir.dev/plugin/plugintest"
)

func TestTenantsAreSetAndHealthChecksDropped(t *testing.T) {
	b := plugintest.Traces()
	shop := b.Resource(plugintest.Attrs{"tenant.id": "acme"})
	b.Span(shop, "GET /cart", nil)
	b.Span(shop, "GET /healthz", nil)
	billing := b.Resource(plugintest.Attrs{"service.name": "billing"})
	b.Span(billing, "charge", plugintest.Attrs{"tenant.id": 42})
	if err := b.Run(New, `{}`); err != nil {
		t.Fatal(err)
	}
	if got := b.Attr(plugin.LevelResource, shop, "tenant").Str(); got != "acme" {
		t.Errorf("shop's tenant %q", got)
	}
	if got := b.Attr(plugin.LevelResource, billing, "tenant").Str(); got != "42" {
		t.Errorf("billing's tenant %q (from the span's int tenant.id)", got)
	}
	if got := b.Dropped(); len(got) != 1 || got[0] != 1 {
		t.Errorf("dropped %v, want the health check only", got)
	}
}

func TestConfigChoosesKeysAndNames(t *testing.T) {
	b := plugintest.Traces()
	r := b.Resource(plugintest.Attrs{"org": "globex"})
	b.Span(r, "GET /ready", nil)
	b.Span(r, "GET /healthz", nil)
	if err := b.Run(New, `{"from": "org", "to": "customer", "drop_names": ["GET /ready"]}`); err != nil {
		t.Fatal(err)
	}
	if got := b.Attr(plugin.LevelResource, r, "customer").Str(); got != "globex" {
		t.Errorf("customer %q", got)
	}
	if !b.IsDropped(0) || b.IsDropped(1) {
		t.Errorf("dropped %v, want GET /ready only", b.Dropped())
	}
}

func TestABadConfigNamesTheKey(t *testing.T) {
	err := plugintest.Traces().Run(New, `{"drop_names": "GET /health"}`)
	if err == nil || !strings.Contains(err.Error(), "drop_names: expected list, got string") {
		t.Fatalf("got %v", err)
	}
}
