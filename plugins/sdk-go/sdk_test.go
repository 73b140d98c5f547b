package plugin_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"weir.dev/plugin"
	"weir.dev/plugin/plugintest"
)

func TestValuesRoundTripThroughTheTaggedEncoding(t *testing.T) {
	for _, v := range []plugin.Value{
		{}, plugin.Str(""), plugin.Str("héllo"), plugin.Int(-42), plugin.Double(1.5), plugin.Bool(true),
		plugin.Bool(false), plugin.Bytes([]byte{0, 1, 2}), plugin.JSON(`[1,"a"]`),
	} {
		enc := plugin.EncodeValue(v)
		if got := plugin.DecodeValue(enc); !got.Equal(v) {
			t.Errorf("%v: encoded %x, decoded %v", v, enc, got)
		}
	}
	if enc := plugin.EncodeValue(plugin.Value{}); string(enc) != "\x00" {
		t.Errorf("absent must be the single byte 0, got %x", enc)
	}
	if enc := plugin.EncodeValue(plugin.Str("")); string(enc) != "\x01" {
		t.Errorf("an empty string is tag 1 with no payload, got %x", enc)
	}
}

func TestTextIsWhatTheHostMatchesOn(t *testing.T) {
	cases := map[string]plugin.Value{
		"42": plugin.Int(42), "1.5": plugin.Double(1.5), "1": plugin.Double(1), "true": plugin.Bool(true),
		"inf": plugin.Double(math.Inf(1)), "x": plugin.Str("x"), `{"a":1}`: plugin.JSON(`{"a":1}`),
	}
	for want, v := range cases {
		if got, ok := v.Text(); !ok || got != want {
			t.Errorf("%v: text %q, %v; want %q", v, got, ok, want)
		}
	}
	if _, ok := plugin.Bytes([]byte("x")).Text(); ok {
		t.Error("bytes have no text")
	}
	if _, ok := (plugin.Value{}).Text(); ok {
		t.Error("absent has no text")
	}
}

func TestGlobs(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"GET /health*", "GET /healthz", true}, {"GET /health*", "GET /health", true},
		{"GET /health*", "GET /cart", false}, {"*.internal", "db.eu.internal", true},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"a?c", "aéc", true}, {"*a*b*", "xxaxxbxx", true},
		{"*a*b", "xxaxxbxxc", false}, {"", "", true}, {"*", "", true}, {"exact", "exact", true},
	} {
		if got := plugin.GlobMatch(c.p, c.s); got != c.want {
			t.Errorf("GlobMatch(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

type cfg struct {
	From      string   `json:"from"`
	DropNames []string `json:"drop_names"`
	Limit     int      `json:"limit"`
	Inner     struct {
		On bool `json:"on"`
	} `json:"inner"`
}

func TestConfigKeepsDefaultsAndNamesTheBadKey(t *testing.T) {
	c := cfg{From: "tenant.id", DropNames: []string{"GET /health*"}}
	if err := plugin.ParseConfig(`{"limit": 3}`, &c); err != nil {
		t.Fatal(err)
	}
	if c.From != "tenant.id" || c.Limit != 3 || len(c.DropNames) != 1 {
		t.Errorf("defaults lost or value not set: %+v", c)
	}
	for config, want := range map[string]string{
		`{"drop_names": "GET /health"}`: "drop_names: expected list, got string",
		`{"from": 1}`:                   "from: expected string, got number",
		`{"limit": 1.5}`:                "limit: expected integer, got number 1.5",
		`{"inner": {"on": "yes"}}`:      "inner.on: expected bool, got string",
		`{"inner": {"off": true}}`:      `inner: unknown key "off"`,
		`{"From": "x"}`:                 "From: unknown key; expected one of drop_names, from, inner, limit",
		`[1]`:                           "config: expected table, got list",
		`{`:                             "config is not JSON",
	} {
		err := plugin.ParseConfig(config, &cfg{})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", config, err, want)
		}
	}
	if err := plugin.ParseConfig("", &c); err != nil {
		t.Errorf("an empty config is {}: %v", err)
	}
}

// funcPlugin adapts a function to plugin.Plugin.
type funcPlugin func(b *plugin.Batch) error

func (f funcPlugin) Process(b *plugin.Batch) error { return f(b) }

func factory(f funcPlugin) plugin.Factory {
	return func(string) (plugin.Plugin, error) { return f, nil }
}

func shop() *plugintest.MemoryBatch {
	b := plugintest.Traces()
	r := b.Resource(plugintest.Attrs{"service.name": "shop", "tenant.id": "acme"})
	b.Span(r, "GET /cart", nil)
	s := b.Span(r, "GET /healthz", plugintest.Attrs{"tenant.id": 7})
	b.Event(s, "exception", nil)
	r2 := b.Resource(plugintest.Attrs{"service.name": "billing"})
	b.Span(r2, "charge", plugintest.Attrs{"user.email": "ada@example.com"})
	return b
}

func TestReadsInheritanceAndHostSideMatching(t *testing.T) {
	b := shop()
	err := b.Run(factory(func(bt *plugin.Batch) error {
		if bt.Len() != 3 || bt.Count(plugin.LevelResource) != 2 || bt.Count(plugin.LevelEvent) != 1 {
			t.Errorf("counts: %d items, %d resources", bt.Len(), bt.Count(plugin.LevelResource))
		}
		if got := bt.Ancestors(plugin.LevelItem, plugin.LevelResource); len(got) != 3 || got[2] != 1 {
			t.Errorf("ancestors %v", got)
		}
		if got := bt.Ancestors(plugin.LevelEvent, plugin.LevelResource); len(got) != 1 || got[0] != 0 {
			t.Errorf("event ancestors %v", got)
		}
		if got := bt.Ancestors(plugin.LevelResource, plugin.LevelItem); got != nil {
			t.Errorf("no ancestors below: %v", got)
		}
		ids := bt.AttributeInherited(plugin.LevelItem, "tenant.id")
		if v, _ := ids.Value(0).Text(); v != "acme" {
			t.Errorf("item 0 inherits acme, got %v", ids.Value(0))
		}
		if ids.Value(1).Int() != 7 || !ids.Value(2).IsAbsent() {
			t.Errorf("own value wins, absent where none: %v", ids.Values())
		}
		if own := bt.Attribute(plugin.LevelItem, "tenant.id"); !own.Value(0).IsAbsent() {
			t.Errorf("plain read does not inherit: %v", own.Value(0))
		}
		if got := bt.Field(plugin.LevelItem, plugin.FieldName).Strs(); strings.Join(got, ",") != "GET /cart,GET /healthz,charge" {
			t.Errorf("names %v", got)
		}
		if got := bt.SelectField(plugin.LevelItem, plugin.FieldName, plugin.Glob("GET /*")); len(got) != 2 {
			t.Errorf("glob %v", got)
		}
		if got := bt.SelectAttribute(plugin.LevelItem, "tenant.id", plugin.AnyOf("7"), false); len(got) != 1 || got[0] != 1 {
			t.Errorf("ints match by their text: %v", got)
		}
		if got := bt.SelectAttribute(plugin.LevelItem, "tenant.id", plugin.Absent(), true); len(got) != 1 || got[0] != 2 {
			t.Errorf("absent inherited %v", got)
		}
		if attrs := bt.Attributes(plugin.LevelResource); attrs[1]["service.name"].Str() != "billing" {
			t.Errorf("attributes %v", attrs)
		}
		return nil
	}), "{}")
	if err != nil {
		t.Fatal(err)
	}
}

// countingHost counts the host calls a batch makes.
type countingHost struct {
	*plugintest.MemoryBatch
	applies, drops int
}

func (h *countingHost) Apply(e []plugin.Edit) error { h.applies++; return h.MemoryBatch.Apply(e) }
func (h *countingHost) DropItems(i []uint32) error  { h.drops++; return h.MemoryBatch.DropItems(i) }

func TestEditsAreQueuedAndHandedOverOnce(t *testing.T) {
	h := &countingHost{MemoryBatch: shop()}
	p := funcPlugin(func(b *plugin.Batch) error {
		b.SetAttribute(plugin.LevelResource, 0, "tenant", plugin.Str("acme"))
		b.SetAttributeMany(plugin.LevelItem, []uint32{0, 1, 2}, "seen", plugin.Bool(true))
		b.RemoveAttribute(plugin.LevelItem, 2, "user.email")
		b.SetField(plugin.LevelItem, 0, plugin.FieldName, plugin.Str("GET /basket"))
		b.Drop(1)
		b.Drop(2)
		if h.applies+h.drops != 0 {
			t.Error("edits reached the host before Process returned")
		}
		return nil
	})
	if err := plugin.RunBatch(p, h, 0); err != nil {
		t.Fatal(err)
	}
	if h.applies != 1 || h.drops != 1 {
		t.Errorf("host calls: %d applies, %d drops; want one each", h.applies, h.drops)
	}
}

func TestChangesApplyOnlyWhenTheCallSucceeds(t *testing.T) {
	b := shop()
	err := b.Run(factory(func(bt *plugin.Batch) error {
		bt.SetAttribute(plugin.LevelResource, 0, "tenant", plugin.Str("acme"))
		bt.Drop(0)
		return errors.New("upstream said no")
	}), "{}")
	if err == nil || err.Error() != "upstream said no" {
		t.Fatalf("the plugin's error is the call's: %v", err)
	}
	if !b.Attr(plugin.LevelResource, 0, "tenant").IsAbsent() || b.IsDropped(0) {
		t.Error("a failed call changed the batch")
	}
	if err := b.Run(factory(func(bt *plugin.Batch) error {
		bt.SetAttribute(plugin.LevelResource, 0, "tenant", plugin.Str("acme"))
		bt.Drop(0)
		return nil
	}), "{}"); err != nil {
		t.Fatal(err)
	}
	if b.Attr(plugin.LevelResource, 0, "tenant").Str() != "acme" || !b.IsDropped(0) {
		t.Error("a successful call's changes did not apply")
	}
}

func TestARefusedEditNamesItselfAndNothingApplies(t *testing.T) {
	b := shop()
	err := b.Run(factory(func(bt *plugin.Batch) error {
		bt.SetAttribute(plugin.LevelResource, 0, "tenant", plugin.Str("acme"))
		bt.SetField(plugin.LevelItem, 0, plugin.FieldName, plugin.Int(3))
		return nil
	}), "{}")
	if err == nil || !strings.Contains(err.Error(), "weir refused edit 1 of 2") || !strings.Contains(err.Error(), "sets name to int 3") {
		t.Fatalf("got %v", err)
	}
	if !b.Attr(plugin.LevelResource, 0, "tenant").IsAbsent() {
		t.Error("the valid edit before the bad one applied")
	}
	for _, edit := range []func(*plugin.Batch){
		func(bt *plugin.Batch) { bt.SetAttribute(plugin.LevelResource, 9, "k", plugin.Str("v")) },
		func(bt *plugin.Batch) { bt.SetField(plugin.LevelItem, 0, plugin.FieldBody, plugin.Str("v")) },
		func(bt *plugin.Batch) { bt.SetField(plugin.LevelItem, 0, plugin.FieldKind, plugin.Int(1<<40)) },
		func(bt *plugin.Batch) { bt.SetAttribute(plugin.LevelItem, 0, "k", plugin.JSON("{")) },
		func(bt *plugin.Batch) { bt.Drop(3) },
		func(bt *plugin.Batch) { bt.SetAttribute(plugin.LevelItem, 0, "k", plugin.Value{}) },
	} {
		if err := shop().Run(factory(func(bt *plugin.Batch) error { edit(bt); return nil }), "{}"); err == nil {
			t.Error("an invalid change was accepted")
		}
	}
}

func TestPanicsBecomeErrorsWithTheMessage(t *testing.T) {
	err := shop().Run(factory(func(bt *plugin.Batch) error {
		var m map[string]int
		m["x"] = 1
		return nil
	}), "{}")
	if err == nil || !strings.HasPrefix(err.Error(), "panic in process: assignment to entry in nil map") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "sdk_test.go") {
		t.Errorf("the stack names the plugin's file: %v", err)
	}
	_, err = plugin.RunInit(func(string) (plugin.Plugin, error) { panic("bad config handling") }, "{}")
	if err == nil || !strings.HasPrefix(err.Error(), "panic in init: bad config handling") {
		t.Fatalf("got %v", err)
	}
	_, err = plugin.RunInit(func(string) (plugin.Plugin, error) { return nil, nil }, "{}")
	if err == nil {
		t.Fatal("a nil plugin without an error must be refused")
	}
}

type perSignal struct{ logs, other int }

func (p *perSignal) Process(*plugin.Batch) error     { p.other++; return nil }
func (p *perSignal) ProcessLogs(*plugin.Batch) error { p.logs++; return nil }

func TestPerSignalMethodsWin(t *testing.T) {
	p := &perSignal{}
	lb := plugintest.Logs()
	lb.Log(lb.Resource(nil), "hello", nil)
	if err := lb.Process(p); err != nil {
		t.Fatal(err)
	}
	if err := shop().Process(p); err != nil {
		t.Fatal(err)
	}
	if p.logs != 1 || p.other != 1 {
		t.Errorf("logs %d, other %d", p.logs, p.other)
	}
}

func TestLogsMetricsAndRoutes(t *testing.T) {
	lb := plugintest.Logs()
	r := lb.Resource(nil)
	lb.Log(r, "user ada@example.com logged in", nil)
	lb.Log(r, 42, nil)
	if err := lb.Run(factory(func(bt *plugin.Batch) error {
		hits := bt.SelectField(plugin.LevelItem, plugin.FieldBody, plugin.Glob("*@*"))
		for _, i := range hits {
			bt.SetField(plugin.LevelItem, i, plugin.FieldBody, plugin.Str("<redacted>"))
		}
		if v := bt.Field(plugin.LevelItem, plugin.FieldBody).Value(1); v.Int() != 42 {
			t.Errorf("body %v", v)
		}
		bt.Route("audit", 1)
		return nil
	}), "{}"); err != nil {
		t.Fatal(err)
	}
	if got := plugin.DecodeValue(lb.FieldOf(plugin.LevelItem, 0, plugin.FieldBody)).Str(); got != "<redacted>" {
		t.Errorf("body not set: %q", got)
	}
	if lb.RouteOf(1) != "audit" || lb.RouteOf(0) != "" {
		t.Error("route not given")
	}

	mb := plugintest.Metrics()
	m := mb.Metric(mb.Resource(plugintest.Attrs{"tenant.id": "acme"}), "http.requests", "Requests", "1", nil)
	mb.Point(m, plugintest.Attrs{"code": 200})
	mb.Point(m, nil)
	if err := mb.Run(factory(func(bt *plugin.Batch) error {
		if got := bt.Ancestors(plugin.LevelItem, plugin.LevelMetric); len(got) != 2 || got[1] != 0 {
			t.Errorf("points' metric %v", got)
		}
		if bt.Field(plugin.LevelItem, plugin.FieldName).Str(1) != "http.requests" {
			t.Error("a point's name is its metric's")
		}
		if v, _ := bt.AttributeInherited(plugin.LevelItem, "tenant.id").Value(1).Text(); v != "acme" {
			t.Errorf("points inherit from the resource, got %q", v)
		}
		bt.SetField(plugin.LevelMetric, 0, plugin.FieldDescription, plugin.Str("HTTP requests"))
		return nil
	}), "{}"); err != nil {
		t.Fatal(err)
	}
	if got := string(mb.FieldOf(plugin.LevelMetric, 0, plugin.FieldDescription)); got != "HTTP requests" {
		t.Errorf("description %q", got)
	}
}
