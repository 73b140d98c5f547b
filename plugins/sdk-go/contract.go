// Package plugin is weir's plugin SDK for Go, on weir:plugin@0.2.0
// (wit/v0.2.0/plugin.wit). It is a thin layer over the bindings `wit-bindgen
// go` 0.63 generates (checked in under internal/wit):
//
//	package main
//
//	import "weir.dev/plugin"
//
//	type dropHealth struct{ names []string }
//
//	func (p *dropHealth) Process(b *plugin.Batch) error {
//		b.Drop(b.SelectField(plugin.LevelItem, plugin.FieldName, plugin.Glob(p.names...))...)
//		return nil
//	}
//
//	func init() {
//		plugin.Export(func(config string) (plugin.Plugin, error) {
//			cfg := struct {
//				Names []string `json:"names"`
//			}{Names: []string{"GET /health*"}}
//			if err := plugin.ParseConfig(config, &cfg); err != nil {
//				return nil, err
//			}
//			return &dropHealth{cfg.Names}, nil
//		})
//	}
//
//	func main() {}
//
// Reads go to the host in bulk (one call per column) and matching runs on the
// host (SelectField, SelectAttribute). Edits are queued and handed to the host
// once, after Process returns: all apply, or none. A panic in the factory or in
// Process becomes the call's error, with its message and stack.
//
// Under wasip1 the SDK also does what the Go runtime needs inside a component
// and plugin authors should never see: it drops the borrowed batch handle
// before the call returns, keeps automatic garbage collection off and collects
// between calls, and unpins what the host allocated for each call (see
// export_wasip1.go). Natively (`go test`) the plugintest package's in-memory
// batch stands in for the host.
package plugin

import "fmt"

// Signal is the kind of telemetry in a batch.
type Signal uint8

const (
	Traces Signal = iota
	Logs
	Metrics
)

func (s Signal) String() string {
	switch s {
	case Traces:
		return "traces"
	case Logs:
		return "logs"
	case Metrics:
		return "metrics"
	}
	return fmt.Sprintf("signal(%d)", uint8(s))
}

// Level is a level of a batch's tree. Each level numbers its entities from 0
// in request order: resource → scope → item (span, log record or metric data
// point); a span's events and links; scope → metric → item → exemplar.
type Level uint8

const (
	LevelResource Level = iota
	LevelScope
	LevelItem
	LevelEvent
	LevelLink
	LevelMetric
	LevelExemplar
)

// Levels lists every level in contract order.
var Levels = []Level{LevelResource, LevelScope, LevelItem, LevelEvent, LevelLink, LevelMetric, LevelExemplar}

func (l Level) String() string {
	names := [...]string{"resource", "scope", "item", "event", "link", "metric", "exemplar"}
	if int(l) < len(names) {
		return names[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// Field is a plain (untagged) field. Which level has which is listed in the
// WIT: e.g. spans have FieldName, FieldKind, FieldStatusCode…, log records
// FieldBody (tagged), FieldSeverityText…, metrics FieldName, FieldUnit,
// FieldDescription.
type Field uint8

const (
	FieldName Field = iota
	FieldTraceID
	FieldSpanID
	FieldParentSpanID
	FieldKind
	FieldStatusCode
	FieldStatusMessage
	FieldStartTime
	FieldEndTime
	FieldTraceState
	FieldFlags
	FieldBody
	FieldSeverityText
	FieldSeverityNumber
	FieldTime
	FieldObservedTime
	FieldEventName
	FieldUnit
	FieldDescription
)

var fieldNames = [...]string{"name", "trace-id", "span-id", "parent-span-id", "kind", "status-code",
	"status-message", "start-time", "end-time", "trace-state", "flags", "body", "severity-text",
	"severity-number", "time", "observed-time", "event-name", "unit", "description"}

func (f Field) String() string {
	if int(f) < len(fieldNames) {
		return fieldNames[f]
	}
	return fmt.Sprintf("field(%d)", uint8(f))
}

// IsText reports whether the field holds UTF-8 text (an empty entry is an
// empty string, not an absent value).
func (f Field) IsText() bool {
	switch f {
	case FieldName, FieldStatusMessage, FieldTraceState, FieldSeverityText, FieldEventName, FieldUnit, FieldDescription:
		return true
	}
	return false
}

// Column is one value per entity: entity i's bytes are
// Data[Offsets[i]:Offsets[i+1]]. Plain fields are untagged (text as UTF-8,
// ids as raw bytes, numbers little-endian); attributes and log bodies are
// tagged values (read them with Value).
type Column struct {
	Data    []byte
	Offsets []uint32
}

// AttributeTable is every attribute of every entity at one level: entity i
// owns entries EntityOffsets[i]..EntityOffsets[i+1] of Keys and Values.
type AttributeTable struct {
	EntityOffsets []uint32
	Keys          Column
	Values        Column
}

// EditKind says which of an Edit's fields are used.
type EditKind uint8

const (
	// EditAttribute sets (or, with an absent Value, removes) Key on Entity.
	EditAttribute EditKind = iota
	// EditAttributeMany does the same on every one of Entities.
	EditAttributeMany
	// EditField sets Field of Entity to Value.
	EditField
)

// Edit is one queued change, as the host receives it.
type Edit struct {
	Kind     EditKind
	Level    Level
	Entity   uint32
	Entities []uint32
	Key      string
	Field    Field
	// Value set; absent (the zero Value) removes an attribute.
	Value Value
}

// ChangeError is the host's refusal of an edit list: the index of the first
// bad edit and why. Nothing of that list was queued.
type ChangeError struct {
	Edit    uint32
	Message string
}

func (e *ChangeError) Error() string {
	return fmt.Sprintf("edit %d: %s", e.Edit, e.Message)
}

// Host is the batch as weir lends it to one call: the methods of the WIT's
// `batch` resource. The component's host (under wasip1) and
// plugintest.MemoryBatch (natively) implement it; plugins use it through
// Batch.
type Host interface {
	Signal() Signal
	Len() uint32
	Count(level Level) uint32
	Owners(level Level) []uint32
	Ancestors(level, of Level) []uint32
	ReadField(level Level, field Field) Column
	ReadAttribute(level Level, key string) Column
	ReadAttributeInherited(level Level, key string) Column
	ReadAttributes(level Level) AttributeTable
	MatchField(level Level, field Field, m Matcher) []uint32
	MatchAttribute(level Level, key string, m Matcher, inherited bool) []uint32
	// Apply queues edits, all or none; a refusal is a *ChangeError.
	Apply(edits []Edit) error
	DropItems(items []uint32) error
	RouteItems(route string, items []uint32) error
	ToOTLP() []byte
	ReplaceOTLP(otlp []byte) error
}
