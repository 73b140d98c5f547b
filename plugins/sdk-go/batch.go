package plugin

import (
	"errors"
	"fmt"
)

// Batch is one batch as a plugin sees it during one call. Reads go to the host
// (one call each); edits, drops and routes are queued and handed over once,
// after Process returns successfully. Do not keep a Batch past the call.
type Batch struct {
	host     Host
	sequence uint64
	edits    []Edit
	drops    []uint32
	routes   []routed
	bad      error
}

type routed struct {
	name  string
	items []uint32
}

// Signal is the batch's kind of telemetry.
func (b *Batch) Signal() Signal { return b.host.Signal() }

// Len is the number of items (spans, log records or metric data points).
func (b *Batch) Len() int { return int(b.host.Len()) }

// Count is the number of entities at a level.
func (b *Batch) Count(level Level) int { return int(b.host.Count(level)) }

// Sequence increases by one for each batch this plugin instance sees.
func (b *Batch) Sequence() uint64 { return b.sequence }

// Owners is each entity's direct parent (scope → resource, item → scope,
// event/link → item, metric → scope, exemplar → item); nil for resources.
func (b *Batch) Owners(level Level) []uint32 { return b.host.Owners(level) }

// Ancestors is each entity's ancestor at level `of`, e.g. every item's
// resource; nil when `of` is not above `level`.
func (b *Batch) Ancestors(level, of Level) []uint32 { return b.host.Ancestors(level, of) }

// Field is a plain field of every entity at a level.
func (b *Batch) Field(level Level, field Field) Column { return b.host.ReadField(level, field) }

// Attribute is one attribute of every entity at a level (absent where unset).
func (b *Batch) Attribute(level Level, key string) Column { return b.host.ReadAttribute(level, key) }

// AttributeInherited is one attribute of every entity at a level, taken from
// the nearest entity up the tree that has it (item, then scope, then
// resource; for events and links their span first).
func (b *Batch) AttributeInherited(level Level, key string) Column {
	return b.host.ReadAttributeInherited(level, key)
}

// Attributes is every attribute of every entity at a level, one map per entity.
func (b *Batch) Attributes(level Level) []map[string]Value {
	t := b.host.ReadAttributes(level)
	n := len(t.EntityOffsets) - 1
	if n < 0 {
		n = 0
	}
	out := make([]map[string]Value, n)
	for e := range out {
		m := map[string]Value{}
		for j := t.EntityOffsets[e]; j < t.EntityOffsets[e+1]; j++ {
			m[t.Keys.Str(int(j))] = t.Values.Value(int(j))
		}
		out[e] = m
	}
	return out
}

// AttributeTable is every attribute of every entity at a level, as the host
// sends it (no maps built).
func (b *Batch) AttributeTable(level Level) AttributeTable { return b.host.ReadAttributes(level) }

// SelectField is the entities at a level whose field m selects, matched on the host.
func (b *Batch) SelectField(level Level, field Field, m Matcher) []uint32 {
	return b.host.MatchField(level, field, m)
}

// SelectAttribute is the entities at a level whose attribute `key` (inherited
// from above when `inherited`) m selects, matched on the host.
func (b *Batch) SelectAttribute(level Level, key string, m Matcher, inherited bool) []uint32 {
	return b.host.MatchAttribute(level, key, m, inherited)
}

// SetAttribute queues setting `key` on one entity.
func (b *Batch) SetAttribute(level Level, entity uint32, key string, v Value) {
	if v.IsAbsent() {
		b.fail(fmt.Errorf("SetAttribute %q: an absent value; use RemoveAttribute", key))
		return
	}
	b.edits = append(b.edits, Edit{Kind: EditAttribute, Level: level, Entity: entity, Key: key, Value: v})
}

// SetAttributeMany queues setting `key` on many entities, as one edit.
func (b *Batch) SetAttributeMany(level Level, entities []uint32, key string, v Value) {
	if v.IsAbsent() {
		b.fail(fmt.Errorf("SetAttributeMany %q: an absent value; use RemoveAttributeMany", key))
		return
	}
	if len(entities) > 0 {
		b.edits = append(b.edits, Edit{Kind: EditAttributeMany, Level: level, Entities: entities, Key: key, Value: v})
	}
}

// RemoveAttribute queues removing `key` from one entity.
func (b *Batch) RemoveAttribute(level Level, entity uint32, key string) {
	b.edits = append(b.edits, Edit{Kind: EditAttribute, Level: level, Entity: entity, Key: key})
}

// RemoveAttributeMany queues removing `key` from many entities, as one edit.
func (b *Batch) RemoveAttributeMany(level Level, entities []uint32, key string) {
	if len(entities) > 0 {
		b.edits = append(b.edits, Edit{Kind: EditAttributeMany, Level: level, Entities: entities, Key: key})
	}
}

// SetField queues setting a plain field: a span's name or status message, a
// log record's body or severity, an event's name, a metric's description…
// (the WIT lists which are settable and with which value type).
func (b *Batch) SetField(level Level, entity uint32, field Field, v Value) {
	if v.IsAbsent() {
		b.fail(fmt.Errorf("SetField %s: a field cannot be set to an absent value", field))
		return
	}
	b.edits = append(b.edits, Edit{Kind: EditField, Level: level, Entity: entity, Field: field, Value: v})
}

// Drop queues dropping these items.
func (b *Batch) Drop(items ...uint32) { b.drops = append(b.drops, items...) }

// Route queues giving these items a route name (the last route given wins).
func (b *Batch) Route(name string, items ...uint32) {
	if len(items) > 0 {
		b.routes = append(b.routes, routed{name, items})
	}
}

// ToOTLP is the batch (before this call's queued changes) as an OTLP
// protobuf Export{Trace,Logs,Metrics}ServiceRequest.
func (b *Batch) ToOTLP() []byte { return b.host.ToOTLP() }

// ReplaceOTLP replaces the whole batch with an OTLP protobuf request of the
// same signal and discards the changes queued before it (also those this SDK
// had not handed over yet). Refused, and nothing discarded, if the bytes are
// not such a request.
func (b *Batch) ReplaceOTLP(otlp []byte) error {
	if err := b.host.ReplaceOTLP(otlp); err != nil {
		return err
	}
	b.edits, b.drops, b.routes = nil, nil, nil
	return nil
}

func (b *Batch) fail(err error) {
	if b.bad == nil {
		b.bad = err
	}
}

// flush hands the queued changes to the host: the edits in one call, the drops
// in one, each route in one.
func (b *Batch) flush() error {
	if b.bad != nil {
		return b.bad
	}
	if len(b.edits) > 0 {
		if err := b.host.Apply(b.edits); err != nil {
			var ce *ChangeError
			if errors.As(err, &ce) {
				return fmt.Errorf("weir refused edit %d of %d: %s", ce.Edit, len(b.edits), ce.Message)
			}
			return err
		}
	}
	if len(b.drops) > 0 {
		if err := b.host.DropItems(b.drops); err != nil {
			return fmt.Errorf("weir refused the drops: %w", err)
		}
	}
	for _, r := range b.routes {
		if err := b.host.RouteItems(r.name, r.items); err != nil {
			return fmt.Errorf("weir refused route %q: %w", r.name, err)
		}
	}
	return nil
}
