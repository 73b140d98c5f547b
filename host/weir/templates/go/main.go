// {{name}}: a weir plugin in Go (weir:plugin@0.2.0). It masks email addresses
// in span attributes and drops health-check spans; change Process.
package main

import "weir.dev/plugin"

// Config is the plugin's table from weir's config, with its defaults.
type Config struct {
	DropNames []string `json:"drop_names"`
	Mask      string   `json:"mask"`
}

type Plugin struct {
	cfg Config
}

// New makes the plugin from its config; an error rejects the config.
func New(config string) (plugin.Plugin, error) {
	cfg := Config{DropNames: []string{"GET /health*"}, Mask: "***"}
	if err := plugin.ParseConfig(config, &cfg); err != nil {
		return nil, err
	}
	return &Plugin{cfg}, nil
}

func (p *Plugin) Process(b *plugin.Batch) error {
	// Matching runs on the host: one call each, no loop over spans here.
	emails := b.SelectAttribute(plugin.LevelItem, "user.email", plugin.Glob("*@*"), false)
	b.SetAttributeMany(plugin.LevelItem, emails, "user.email", plugin.Str(p.cfg.Mask))
	if len(p.cfg.DropNames) > 0 {
		b.Drop(b.SelectField(plugin.LevelItem, plugin.FieldName, plugin.Glob(p.cfg.DropNames...))...)
	}
	return nil
}

func init() { plugin.Export(New) }

// A component has no main to run; Go wants one in package main.
func main() {}
