// Package export_wit_world is where the generated exports (../wit_exports)
// call in. wit-bindgen leaves this package to the application; the SDK
// provides it and forwards every call to the hooks the SDK's wasip1 glue
// (weir.dev/plugin, export_wasip1.go) sets at start-up, so no plugin author
// writes code against the generated bindings.
package export_wit_world

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	types "weir.dev/plugin/internal/wit/imports/weir_plugin_types"
)

// Hooks set by the SDK.
var (
	OnInit    func(config string) witTypes.Result[witTypes.Unit, string]
	OnProcess func(signal types.Signal, batch *types.Batch, ctx types.Context) witTypes.Result[witTypes.Unit, types.PluginError]
)

func Init(config string) witTypes.Result[witTypes.Unit, string] {
	return OnInit(config)
}

func ProcessTraces(batch *types.Batch, ctx types.Context) witTypes.Result[witTypes.Unit, types.PluginError] {
	return OnProcess(types.Signal_Traces, batch, ctx)
}

func ProcessLogs(batch *types.Batch, ctx types.Context) witTypes.Result[witTypes.Unit, types.PluginError] {
	return OnProcess(types.Signal_Logs, batch, ctx)
}

func ProcessMetrics(batch *types.Batch, ctx types.Context) witTypes.Result[witTypes.Unit, types.PluginError] {
	return OnProcess(types.Signal_Metrics, batch, ctx)
}
