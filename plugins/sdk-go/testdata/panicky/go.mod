module weir.dev/plugin/testdata/panicky

go 1.27.1

require weir.dev/plugin v0.0.0

require go.bytecodealliance.org/pkg v0.4.0 // indirect

replace (
	go.bytecodealliance.org/pkg => ../../third_party/go-pkg
	weir.dev/plugin => ../..
)
