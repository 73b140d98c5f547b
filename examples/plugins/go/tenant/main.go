// The example processor in Go: every resource gets a `tenant` attribute from
// `tenant.id` (found on the span, its scope or its resource), and health
// checks (`GET /health*` spans) are dropped. Matching and the tree walk run on
// the host (weir:plugin@0.2.0 helpers); Go only decides. The same processor
// exists in Rust, Python and JavaScript; all pass examples/plugins/conformance.
package main

import "weir.dev/plugin"

// Config is the plugin's table from weir's config, with its defaults.
type Config struct {
	From      string   `json:"from"`
	To        string   `json:"to"`
	DropNames []string `json:"drop_names"`
}

type Tenant struct {
	cfg Config
}

// New makes the processor from its config; a bad key rejects the config.
func New(config string) (plugin.Plugin, error) {
	cfg := Config{From: "tenant.id", To: "tenant", DropNames: []string{"GET /health*"}}
	if err := plugin.ParseConfig(config, &cfg); err != nil {
		return nil, err
	}
	return &Tenant{cfg}, nil
}

func (t *Tenant) Process(b *plugin.Batch) error {
	ids := b.AttributeInherited(plugin.LevelItem, t.cfg.From)
	resources := b.Ancestors(plugin.LevelItem, plugin.LevelResource)
	tenantOf := map[uint32]string{}
	var order []uint32
	for item, resource := range resources {
		id, ok := ids.Value(item).Text()
		if _, seen := tenantOf[resource]; ok && !seen {
			tenantOf[resource] = id
			order = append(order, resource)
		}
	}
	for _, resource := range order {
		b.SetAttribute(plugin.LevelResource, resource, t.cfg.To, plugin.Str(tenantOf[resource]))
	}
	if b.Signal() == plugin.Traces && len(t.cfg.DropNames) > 0 {
		b.Drop(b.SelectField(plugin.LevelItem, plugin.FieldName, plugin.Glob(t.cfg.DropNames...))...)
	}
	return nil
}

func init() { plugin.Export(New) }

// A component has no main to run; Go wants one in package main.
func main() {}
