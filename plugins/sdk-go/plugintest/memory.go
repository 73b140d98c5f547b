// Package plugintest runs a plugin natively under `go test`, on an in-memory
// batch that implements plugin.Host by the contract's rules — no component,
// no weir:
//
//	b := plugintest.Traces()
//	r := b.Resource(plugintest.Attrs{"tenant.id": "acme"})
//	b.Span(r, "GET /healthz", nil)
//	if err := b.Run(New, `{}`); err != nil { t.Fatal(err) }
//	if !b.IsDropped(0) { t.Error("health check kept") }
//
// It covers resources, scopes, spans, log records, span events and links,
// metrics and their data points, with the host's matching, inheritance and
// edit checks (entities must exist; only settable fields, with their value
// type; JSON must parse; all edits apply or none, and only when the call
// succeeds). ToOTLP and ReplaceOTLP are not available here (they panic, and
// the panic fails the call): test plugins that use them with `weir plugin
// test`. weir is the authority: run the conformance check on the built
// component too.
package plugintest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"

	"weir.dev/plugin"
)

// Attrs are attributes as Go values (see plugin.ValueOf).
type Attrs map[string]any

type entity struct {
	owner  uint32
	metric uint32 // a data point's metric
	attrs  []kv
	fields map[plugin.Field][]byte
}

type kv struct {
	key   string
	value plugin.Value
}

// MemoryBatch is an in-memory batch. Build it, Run a plugin over it, then
// inspect the result.
type MemoryBatch struct {
	signal   plugin.Signal
	levels   [7][]entity
	dropped  map[uint32]bool
	routes   map[uint32]string
	sequence uint64

	// Changes queued during a call; applied only if the call succeeds.
	pendingEdits  []plugin.Edit
	pendingDrops  []uint32
	pendingRoutes []pendingRoute
}

type pendingRoute struct {
	name  string
	items []uint32
}

func newBatch(s plugin.Signal) *MemoryBatch {
	return &MemoryBatch{signal: s, dropped: map[uint32]bool{}, routes: map[uint32]string{}}
}

// Traces, Logs and Metrics make an empty batch of that signal.
func Traces() *MemoryBatch  { return newBatch(plugin.Traces) }
func Logs() *MemoryBatch    { return newBatch(plugin.Logs) }
func Metrics() *MemoryBatch { return newBatch(plugin.Metrics) }

func toKVs(a Attrs) []kv {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]kv, 0, len(keys))
	for _, k := range keys {
		v, err := plugin.ValueOf(a[k])
		if err != nil {
			panic(fmt.Sprintf("plugintest: attribute %q: %v", k, err))
		}
		out = append(out, kv{k, v})
	}
	return out
}

func (b *MemoryBatch) add(l plugin.Level, e entity) uint32 {
	if e.fields == nil {
		e.fields = map[plugin.Field][]byte{}
	}
	b.levels[l] = append(b.levels[l], e)
	return uint32(len(b.levels[l]) - 1)
}

// Resource adds a resource with one scope and returns the resource's index.
func (b *MemoryBatch) Resource(attrs Attrs) uint32 {
	r := b.add(plugin.LevelResource, entity{attrs: toKVs(attrs)})
	b.add(plugin.LevelScope, entity{owner: r})
	return r
}

// Scope adds another scope to a resource; later items of the resource go to it.
func (b *MemoryBatch) Scope(resource uint32, attrs Attrs) uint32 {
	return b.add(plugin.LevelScope, entity{owner: resource, attrs: toKVs(attrs)})
}

func (b *MemoryBatch) lastScope(resource uint32) uint32 {
	for i := len(b.levels[plugin.LevelScope]) - 1; i >= 0; i-- {
		if b.levels[plugin.LevelScope][i].owner == resource {
			return uint32(i)
		}
	}
	panic(fmt.Sprintf("plugintest: no resource %d (add it with Resource first)", resource))
}

// Span adds a span (an item) to the resource's last scope.
func (b *MemoryBatch) Span(resource uint32, name string, attrs Attrs) uint32 {
	i := b.add(plugin.LevelItem, entity{owner: b.lastScope(resource), attrs: toKVs(attrs)})
	b.levels[plugin.LevelItem][i].fields[plugin.FieldName] = []byte(name)
	return i
}

// Log adds a log record with this body (any Go value, see plugin.ValueOf).
func (b *MemoryBatch) Log(resource uint32, body any, attrs Attrs) uint32 {
	v, err := plugin.ValueOf(body)
	if err != nil {
		panic(fmt.Sprintf("plugintest: log body: %v", err))
	}
	i := b.add(plugin.LevelItem, entity{owner: b.lastScope(resource), attrs: toKVs(attrs)})
	b.levels[plugin.LevelItem][i].fields[plugin.FieldBody] = plugin.EncodeValue(v)
	return i
}

// Event adds an event to a span.
func (b *MemoryBatch) Event(item uint32, name string, attrs Attrs) uint32 {
	e := b.add(plugin.LevelEvent, entity{owner: item, attrs: toKVs(attrs)})
	b.levels[plugin.LevelEvent][e].fields[plugin.FieldName] = []byte(name)
	return e
}

// Link adds a link to a span.
func (b *MemoryBatch) Link(item uint32, attrs Attrs) uint32 {
	return b.add(plugin.LevelLink, entity{owner: item, attrs: toKVs(attrs)})
}

// Metric adds a metric to the resource's last scope.
func (b *MemoryBatch) Metric(resource uint32, name, description, unit string, attrs Attrs) uint32 {
	m := b.add(plugin.LevelMetric, entity{owner: b.lastScope(resource), attrs: toKVs(attrs)})
	f := b.levels[plugin.LevelMetric][m].fields
	f[plugin.FieldName], f[plugin.FieldDescription], f[plugin.FieldUnit] = []byte(name), []byte(description), []byte(unit)
	return m
}

// Point adds a data point (an item) to a metric.
func (b *MemoryBatch) Point(metric uint32, attrs Attrs) uint32 {
	m := b.levels[plugin.LevelMetric][metric]
	return b.add(plugin.LevelItem, entity{owner: m.owner, metric: metric, attrs: toKVs(attrs)})
}

// SetField gives an entity a plain field as the host encodes it: a string
// for text fields, []byte for ids, int32 for kind, status code and severity
// number, uint32 for flags, uint64 for times.
func (b *MemoryBatch) SetField(level plugin.Level, entity uint32, field plugin.Field, v any) {
	var raw []byte
	switch x := v.(type) {
	case string:
		raw = []byte(x)
	case []byte:
		raw = x
	case int32:
		raw = binary.LittleEndian.AppendUint32(nil, uint32(x))
	case uint32:
		raw = binary.LittleEndian.AppendUint32(nil, x)
	case uint64:
		raw = binary.LittleEndian.AppendUint64(nil, x)
	default:
		panic(fmt.Sprintf("plugintest: SetField %s: a %T; use string, []byte, int32, uint32 or uint64", field, v))
	}
	b.levels[level][entity].fields[field] = raw
}

// SetSequence sets the sequence number the next call sees.
func (b *MemoryBatch) SetSequence(n uint64) { b.sequence = n }

// Run makes the plugin from config (as weir's init would) and runs it over
// the batch once. The error is what weir would get: the factory's, the
// plugin's, a refused change, or a panic's message.
func (b *MemoryBatch) Run(f plugin.Factory, config string) error {
	p, err := plugin.RunInit(f, config)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return b.Process(p)
}

// Process runs an already made plugin over the batch once; its changes apply
// only if it succeeds.
func (b *MemoryBatch) Process(p plugin.Plugin) error {
	b.pendingEdits, b.pendingDrops, b.pendingRoutes = nil, nil, nil
	err := plugin.RunBatch(p, b, b.sequence)
	b.sequence++
	if err != nil {
		return err
	}
	for _, e := range b.pendingEdits {
		b.applyEdit(e)
	}
	for _, i := range b.pendingDrops {
		b.dropped[i] = true
	}
	for _, r := range b.pendingRoutes {
		for _, i := range r.items {
			b.routes[i] = r.name
		}
	}
	return nil
}

// -- what the plugin saw changed ------------------------------------------

// IsDropped reports whether item i was dropped.
func (b *MemoryBatch) IsDropped(i uint32) bool { return b.dropped[i] }

// Dropped is the dropped items, in order.
func (b *MemoryBatch) Dropped() []uint32 {
	out := make([]uint32, 0, len(b.dropped))
	for i := range b.dropped {
		out = append(out, i)
	}
	sort.Slice(out, func(x, y int) bool { return out[x] < out[y] })
	return out
}

// RouteOf is item i's route ("" for the default route).
func (b *MemoryBatch) RouteOf(i uint32) string { return b.routes[i] }

// Attr is one attribute of one entity (absent if unset).
func (b *MemoryBatch) Attr(level plugin.Level, entity uint32, key string) plugin.Value {
	for _, a := range b.levels[level][entity].attrs {
		if a.key == key {
			return a.value
		}
	}
	return plugin.Value{}
}

// FieldOf is one entity's plain field as the host would send it.
func (b *MemoryBatch) FieldOf(level plugin.Level, entity uint32, field plugin.Field) []byte {
	return b.fieldRaw(level, entity, field)
}

// Name is an item's, event's or metric's name.
func (b *MemoryBatch) Name(level plugin.Level, entity uint32) string {
	return string(b.fieldRaw(level, entity, plugin.FieldName))
}

// -- plugin.Host ------------------------------------------------------------

func (b *MemoryBatch) Signal() plugin.Signal           { return b.signal }
func (b *MemoryBatch) Len() uint32                     { return uint32(len(b.levels[plugin.LevelItem])) }
func (b *MemoryBatch) Count(level plugin.Level) uint32 { return uint32(len(b.levels[level])) }

func parent(l plugin.Level) (plugin.Level, bool) {
	switch l {
	case plugin.LevelScope:
		return plugin.LevelResource, true
	case plugin.LevelItem, plugin.LevelMetric:
		return plugin.LevelScope, true
	case plugin.LevelEvent, plugin.LevelLink, plugin.LevelExemplar:
		return plugin.LevelItem, true
	}
	return 0, false
}

func (b *MemoryBatch) Owners(level plugin.Level) []uint32 {
	if level == plugin.LevelResource {
		return nil
	}
	out := make([]uint32, len(b.levels[level]))
	for i, e := range b.levels[level] {
		out[i] = e.owner
	}
	return out
}

func (b *MemoryBatch) Ancestors(level, of plugin.Level) []uint32 {
	if of == plugin.LevelMetric && b.signal == plugin.Metrics {
		var items []uint32
		switch level {
		case plugin.LevelItem:
			items = b.identity(level)
		case plugin.LevelExemplar:
			items = b.Owners(level)
		default:
			return nil
		}
		out := make([]uint32, len(items))
		for i, it := range items {
			out[i] = b.levels[plugin.LevelItem][it].metric
		}
		return out
	}
	for _, step := range b.chain(level)[1:] {
		if step.level == of {
			return step.index
		}
	}
	return nil
}

func (b *MemoryBatch) identity(level plugin.Level) []uint32 {
	out := make([]uint32, len(b.levels[level]))
	for i := range out {
		out[i] = uint32(i)
	}
	return out
}

type step struct {
	level plugin.Level
	index []uint32
}

// chain is `level` and every level above it, with each entity's ancestor there.
func (b *MemoryBatch) chain(level plugin.Level) []step {
	out := []step{{level, b.identity(level)}}
	for cur := level; ; {
		up, ok := parent(cur)
		if !ok {
			return out
		}
		owners := b.Owners(cur)
		prev := out[len(out)-1].index
		next := make([]uint32, len(prev))
		for i, e := range prev {
			next[i] = owners[e]
		}
		out = append(out, step{up, next})
		cur = up
	}
}

func column(entries [][]byte) plugin.Column {
	c := plugin.Column{Offsets: []uint32{0}}
	for _, e := range entries {
		c.Data = append(c.Data, e...)
		c.Offsets = append(c.Offsets, uint32(len(c.Data)))
	}
	return c
}

func (b *MemoryBatch) fieldRaw(level plugin.Level, i uint32, f plugin.Field) []byte {
	e := b.levels[level][i]
	if level == plugin.LevelItem && b.signal == plugin.Metrics &&
		(f == plugin.FieldName || f == plugin.FieldDescription || f == plugin.FieldUnit) {
		return b.levels[plugin.LevelMetric][e.metric].fields[f]
	}
	if raw, ok := e.fields[f]; ok {
		return raw
	}
	if f == plugin.FieldBody && level == plugin.LevelItem && b.signal == plugin.Logs {
		return []byte{0}
	}
	return nil
}

func (b *MemoryBatch) ReadField(level plugin.Level, f plugin.Field) plugin.Column {
	entries := make([][]byte, len(b.levels[level]))
	for i := range entries {
		entries[i] = b.fieldRaw(level, uint32(i), f)
	}
	return column(entries)
}

func (b *MemoryBatch) ReadAttribute(level plugin.Level, key string) plugin.Column {
	entries := make([][]byte, len(b.levels[level]))
	for i := range entries {
		entries[i] = plugin.EncodeValue(b.Attr(level, uint32(i), key))
	}
	return column(entries)
}

func (b *MemoryBatch) ReadAttributeInherited(level plugin.Level, key string) plugin.Column {
	steps := b.chain(level)
	entries := make([][]byte, len(b.levels[level]))
	for i := range entries {
		v := plugin.Value{}
		for _, s := range steps {
			if v = b.Attr(s.level, s.index[i], key); !v.IsAbsent() {
				break
			}
		}
		entries[i] = plugin.EncodeValue(v)
	}
	return column(entries)
}

func (b *MemoryBatch) ReadAttributes(level plugin.Level) plugin.AttributeTable {
	t := plugin.AttributeTable{EntityOffsets: []uint32{0}}
	var keys, values [][]byte
	for _, e := range b.levels[level] {
		for _, a := range e.attrs {
			keys = append(keys, []byte(a.key))
			values = append(values, plugin.EncodeValue(a.value))
		}
		t.EntityOffsets = append(t.EntityOffsets, uint32(len(keys)))
	}
	t.Keys, t.Values = column(keys), column(values)
	return t
}

func (b *MemoryBatch) MatchField(level plugin.Level, f plugin.Field, m plugin.Matcher) []uint32 {
	var out []uint32
	c := b.ReadField(level, f)
	for i := 0; i < c.Len(); i++ {
		if m.Hits(plugin.FieldText(f, c.Raw(i))) {
			out = append(out, uint32(i))
		}
	}
	return out
}

func (b *MemoryBatch) MatchAttribute(level plugin.Level, key string, m plugin.Matcher, inherited bool) []uint32 {
	c := b.ReadAttribute(level, key)
	if inherited {
		c = b.ReadAttributeInherited(level, key)
	}
	var out []uint32
	for i := 0; i < c.Len(); i++ {
		if m.Hits(c.Value(i).Text()) {
			out = append(out, uint32(i))
		}
	}
	return out
}

func (b *MemoryBatch) Apply(edits []plugin.Edit) error {
	for i, e := range edits {
		if msg := b.check(e); msg != "" {
			return &plugin.ChangeError{Edit: uint32(i), Message: msg}
		}
	}
	b.pendingEdits = append(b.pendingEdits, edits...)
	return nil
}

func (b *MemoryBatch) checkItems(what string, items []uint32) error {
	n := b.Len()
	for _, i := range items {
		if i >= n {
			return fmt.Errorf("%s names item %d, but the batch has %d", what, i, n)
		}
	}
	return nil
}

func (b *MemoryBatch) DropItems(items []uint32) error {
	if err := b.checkItems("drop-items", items); err != nil {
		return err
	}
	b.pendingDrops = append(b.pendingDrops, items...)
	return nil
}

func (b *MemoryBatch) RouteItems(route string, items []uint32) error {
	if err := b.checkItems("route-items", items); err != nil {
		return err
	}
	b.pendingRoutes = append(b.pendingRoutes, pendingRoute{route, items})
	return nil
}

func (b *MemoryBatch) ToOTLP() []byte {
	panic("plugintest.MemoryBatch has no OTLP encoding: test plugins that call ToOTLP with `weir plugin test`")
}

func (b *MemoryBatch) ReplaceOTLP([]byte) error {
	panic("plugintest.MemoryBatch has no OTLP decoding: test plugins that call ReplaceOTLP with `weir plugin test`")
}

// -- the contract's edit rules ----------------------------------------------

type fieldType uint8

const (
	notSettable fieldType = iota
	textField
	int32Field
	anyField
)

// settable is which fields plugins may set, per signal and level, and with
// which value type (weir-plugin-contract's settable_at).
func settable(s plugin.Signal, l plugin.Level, f plugin.Field) fieldType {
	switch {
	case s == plugin.Traces && l == plugin.LevelItem:
		switch f {
		case plugin.FieldName, plugin.FieldStatusMessage, plugin.FieldTraceState:
			return textField
		case plugin.FieldKind, plugin.FieldStatusCode:
			return int32Field
		}
	case s == plugin.Traces && l == plugin.LevelEvent && f == plugin.FieldName:
		return textField
	case s == plugin.Logs && l == plugin.LevelItem:
		switch f {
		case plugin.FieldBody:
			return anyField
		case plugin.FieldSeverityText, plugin.FieldEventName:
			return textField
		case plugin.FieldSeverityNumber:
			return int32Field
		}
	case s == plugin.Metrics && (l == plugin.LevelItem || l == plugin.LevelMetric):
		switch f {
		case plugin.FieldName, plugin.FieldUnit, plugin.FieldDescription:
			return textField
		}
	}
	return notSettable
}

func checkJSON(v plugin.Value) string {
	if v.Kind() == plugin.KindJSON && !json.Valid([]byte(v.JSON())) {
		return "json value is not valid JSON"
	}
	return ""
}

// check is why an edit is refused ("" if it is fine).
func (b *MemoryBatch) check(e plugin.Edit) string {
	n := b.Count(e.Level)
	switch e.Kind {
	case plugin.EditAttribute, plugin.EditAttributeMany:
		ents := e.Entities
		if e.Kind == plugin.EditAttribute {
			ents = []uint32{e.Entity}
		}
		for _, x := range ents {
			if x >= n {
				return fmt.Sprintf("attribute edit names %s entity %d, but the batch has %d", e.Level, x, n)
			}
		}
		if msg := checkJSON(e.Value); msg != "" {
			return fmt.Sprintf("attribute %q: %s", e.Key, msg)
		}
		return ""
	}
	if e.Entity >= n {
		return fmt.Sprintf("field edit names %s %d, but the batch has %d", e.Level, e.Entity, n)
	}
	ok := false
	switch settable(b.signal, e.Level, e.Field) {
	case notSettable:
		return fmt.Sprintf("field %s cannot be set on %s %s", e.Field, b.signal, e.Level)
	case textField:
		ok = e.Value.Kind() == plugin.KindStr
	case int32Field:
		ok = e.Value.Kind() == plugin.KindInt && int64(int32(e.Value.Int())) == e.Value.Int()
	case anyField:
		if msg := checkJSON(e.Value); msg != "" {
			return fmt.Sprintf("field %s: %s", e.Field, msg)
		}
		ok = true
	}
	if !ok {
		return fmt.Sprintf("field edit of %s %d sets %s to %s %s, which it does not take", e.Level, e.Entity, e.Field, e.Value.Kind(), e.Value)
	}
	return ""
}

func (b *MemoryBatch) applyEdit(e plugin.Edit) {
	switch e.Kind {
	case plugin.EditAttribute:
		b.setAttr(e.Level, e.Entity, e.Key, e.Value)
	case plugin.EditAttributeMany:
		for _, x := range e.Entities {
			b.setAttr(e.Level, x, e.Key, e.Value)
		}
	case plugin.EditField:
		raw := []byte(e.Value.Str())
		switch {
		case e.Field == plugin.FieldBody:
			raw = plugin.EncodeValue(e.Value)
		case e.Value.Kind() == plugin.KindInt:
			raw = binary.LittleEndian.AppendUint32(nil, uint32(int32(e.Value.Int())))
		}
		target := b.levels[e.Level][e.Entity].fields
		if e.Level == plugin.LevelItem && b.signal == plugin.Metrics {
			// A data point's name, description and unit are its metric's.
			target = b.levels[plugin.LevelMetric][b.levels[e.Level][e.Entity].metric].fields
		}
		target[e.Field] = raw
	}
}

func (b *MemoryBatch) setAttr(l plugin.Level, i uint32, key string, v plugin.Value) {
	attrs := b.levels[l][i].attrs
	for j, a := range attrs {
		if a.key == key {
			if v.IsAbsent() {
				b.levels[l][i].attrs = append(attrs[:j:j], attrs[j+1:]...)
			} else {
				attrs[j].value = v
			}
			return
		}
	}
	if !v.IsAbsent() {
		b.levels[l][i].attrs = append(attrs, kv{key, v})
	}
}
