//go:build wasip1

package plugin

// The component's side: the generated exports call the hooks set here, and
// this file does what the Go runtime needs inside a weir component so that
// plugin authors never see it:
//
//  1. The generated export hands the call an owned wrapper of the borrowed
//     `batch`; it is dropped before the call returns, or weir traps the call
//     with "borrow handles still remain at the end of the call".
//  2. Automatic garbage collection is off and the SDK collects between calls
//     (at the end of a call once 2 MiB were allocated since the last time).
//     A collection that starts inside `cabi_realloc` (while the host lowers a
//     list it returns) calls a WASI import there, which the component model
//     forbids: the call traps with "cannot leave component instance".
//  3. What the host allocated for a call's results (through `cabi_realloc`,
//     pinned by the vendored runtime) is unpinned after the call; otherwise it
//     can never be collected and each batch leaks its columns.

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	witRuntime "go.bytecodealliance.org/pkg/wit/runtime"
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	hooks "weir.dev/plugin/internal/wit/exports/export_wit_world"
	_ "weir.dev/plugin/internal/wit/exports/wit_exports" // the //go:wasmexport functions
	wit "weir.dev/plugin/internal/wit/imports/weir_plugin_types"
)

var instance Plugin

func init() {
	debug.SetGCPercent(-1)
	hooks.OnInit = exportInit
	hooks.OnProcess = exportProcess
}

// gcEvery is how much a plugin may allocate (garbage included) before the
// SDK collects at the end of a call; collecting after every call would cost
// ~0.2 ms each.
const gcEvery = 2 << 20

var (
	allocated = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	lastGC    uint64
)

// afterCall runs at the end of every export, outside any host call.
func afterCall() {
	witRuntime.Unpin()
	metrics.Read(allocated)
	if now := allocated[0].Value.Uint64(); now-lastGC >= gcEvery {
		runtime.GC()
		lastGC = now
	}
}

func exportInit(config string) (res witTypes.Result[witTypes.Unit, string]) {
	defer afterCall()
	if factory == nil {
		return witTypes.Err[witTypes.Unit, string]("this component registers no plugin: call plugin.Export(New) from an init function of package main")
	}
	p, err := RunInit(factory, config)
	if err != nil {
		return witTypes.Err[witTypes.Unit, string](err.Error())
	}
	instance = p
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

func exportProcess(signal wit.Signal, batch *wit.Batch, ctx wit.Context) witTypes.Result[witTypes.Unit, wit.PluginError] {
	defer afterCall()
	defer batch.Drop()
	if instance == nil {
		return witTypes.Err[witTypes.Unit](wit.PluginError{Message: "process called before init succeeded"})
	}
	if err := RunBatch(instance, componentHost{batch}, ctx.Sequence); err != nil {
		return witTypes.Err[witTypes.Unit](wit.PluginError{Message: err.Error()})
	}
	return witTypes.Ok[witTypes.Unit, wit.PluginError](witTypes.Unit{})
}

// componentHost is the Host that forwards to weir through the generated imports.
type componentHost struct{ b *wit.Batch }

func column(c wit.Column) Column { return Column{Data: c.Data, Offsets: c.Offsets} }

func matcher(m Matcher) wit.Matcher {
	switch m.kind {
	case MatchAnyOf:
		return wit.MakeMatcherAnyOf(m.values)
	case MatchGlob:
		return wit.MakeMatcherGlob(m.values)
	case MatchPresent:
		return wit.MakeMatcherPresent()
	}
	return wit.MakeMatcherAbsent()
}

func value(v Value) wit.Value {
	switch v.kind {
	case KindInt:
		return wit.MakeValueInt(v.Int())
	case KindDouble:
		return wit.MakeValueDouble(v.Double())
	case KindBool:
		return wit.MakeValueBoolean(v.Bool())
	case KindBytes:
		return wit.MakeValueBytes(v.raw)
	case KindJSON:
		return wit.MakeValueJson(v.text)
	}
	return wit.MakeValueStr(v.text)
}

func optValue(v Value) witTypes.Option[wit.Value] {
	if v.IsAbsent() {
		return witTypes.None[wit.Value]()
	}
	return witTypes.Some(value(v))
}

func strErr(r witTypes.Result[witTypes.Unit, string]) error {
	if r.IsErr() {
		return fmt.Errorf("%s", r.Err())
	}
	return nil
}

func (h componentHost) Signal() Signal           { return Signal(h.b.Signal()) }
func (h componentHost) Len() uint32              { return h.b.Len() }
func (h componentHost) Count(level Level) uint32 { return h.b.Count(wit.Level(level)) }
func (h componentHost) Owners(level Level) []uint32 {
	return h.b.Owners(wit.Level(level))
}
func (h componentHost) Ancestors(level, of Level) []uint32 {
	return h.b.Ancestors(wit.Level(level), wit.Level(of))
}
func (h componentHost) ReadField(level Level, field Field) Column {
	return column(h.b.ReadField(wit.Level(level), wit.Field(field)))
}
func (h componentHost) ReadAttribute(level Level, key string) Column {
	return column(h.b.ReadAttribute(wit.Level(level), key))
}
func (h componentHost) ReadAttributeInherited(level Level, key string) Column {
	return column(h.b.ReadAttributeInherited(wit.Level(level), key))
}
func (h componentHost) ReadAttributes(level Level) AttributeTable {
	t := h.b.ReadAttributes(wit.Level(level))
	return AttributeTable{EntityOffsets: t.EntityOffsets, Keys: column(t.Keys), Values: column(t.Values)}
}
func (h componentHost) MatchField(level Level, field Field, m Matcher) []uint32 {
	return h.b.MatchField(wit.Level(level), wit.Field(field), matcher(m))
}
func (h componentHost) MatchAttribute(level Level, key string, m Matcher, inherited bool) []uint32 {
	return h.b.MatchAttribute(wit.Level(level), key, matcher(m), inherited)
}

func (h componentHost) Apply(edits []Edit) error {
	out := make([]wit.Edit, len(edits))
	for i, e := range edits {
		switch e.Kind {
		case EditAttribute:
			out[i] = wit.MakeEditAttribute(wit.AttributeEdit{Level: wit.Level(e.Level), Entity: e.Entity, Key: e.Key, Value: optValue(e.Value)})
		case EditAttributeMany:
			out[i] = wit.MakeEditAttributeMany(wit.AttributeManyEdit{Level: wit.Level(e.Level), Entities: e.Entities, Key: e.Key, Value: optValue(e.Value)})
		default:
			out[i] = wit.MakeEditField(wit.FieldEdit{Level: wit.Level(e.Level), Entity: e.Entity, Field: wit.Field(e.Field), Value: value(e.Value)})
		}
	}
	r := h.b.Apply(out)
	if r.IsErr() {
		ce := r.Err()
		return &ChangeError{Edit: ce.Edit, Message: ce.Message}
	}
	return nil
}

func (h componentHost) DropItems(items []uint32) error { return strErr(h.b.DropItems(items)) }
func (h componentHost) RouteItems(route string, items []uint32) error {
	return strErr(h.b.RouteItems(route, items))
}
func (h componentHost) ToOTLP() []byte                { return h.b.ToOtlp() }
func (h componentHost) ReplaceOTLP(otlp []byte) error { return strErr(h.b.ReplaceOtlp(otlp)) }
