module weir.dev/examples/tenant

go 1.27.1

require weir.dev/plugin v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

// The SDK and the runtime its generated bindings import, from this repository
// (replace directives apply in the main module only, so both are here).
replace (
	go.bytecodealliance.org/pkg => ../../../../plugins/sdk-go/third_party/go-pkg
	weir.dev/plugin => ../../../../plugins/sdk-go
)
