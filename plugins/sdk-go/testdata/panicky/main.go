// A test plugin for tests/e2e/test_plugins_go.py: it indexes past the end of
// a slice when a span is named `panic_on` (a bug, as a plugin author would
// write one), and otherwise marks every span, so the e2e test sees the panic
// become the call's error and the same instance carry on afterwards.
package main

import "weir.dev/plugin"

type panicky struct{ on string }

func (p *panicky) Process(b *plugin.Batch) error {
	names := b.Field(plugin.LevelItem, plugin.FieldName).Strs()
	for i, n := range names {
		if n == p.on {
			_ = names[len(names)+i]
		}
	}
	all := make([]uint32, len(names))
	for i := range all {
		all[i] = uint32(i)
	}
	b.SetAttributeMany(plugin.LevelItem, all, "seen", plugin.Bool(true))
	return nil
}

func init() {
	plugin.Export(func(config string) (plugin.Plugin, error) {
		cfg := struct {
			PanicOn string `json:"panic_on"`
		}{}
		if err := plugin.ParseConfig(config, &cfg); err != nil {
			return nil, err
		}
		return &panicky{cfg.PanicOn}, nil
	})
}

func main() {}
