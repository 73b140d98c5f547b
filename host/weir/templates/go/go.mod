module {{name}}

go 1.27.1

require weir.dev/plugin v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

// The SDK (copied into weir-plugin/) and the runtime its generated bindings
// import (vendored inside it): no module proxy needed.
replace (
	go.bytecodealliance.org/pkg => ./weir-plugin/third_party/go-pkg
	weir.dev/plugin => ./weir-plugin
)
