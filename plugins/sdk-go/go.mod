module weir.dev/plugin

go 1.27.1

require go.bytecodealliance.org/pkg v0.4.0

// The generated bindings import go.bytecodealliance.org/pkg; its source is
// vendored from the crates.io crate wit-bindgen-go 0.63.0 (see
// third_party/go-pkg/VENDORED.md), so builds need no module proxy. A plugin's
// own go.mod repeats this line (replace directives apply in the main module only).
replace go.bytecodealliance.org/pkg => ./third_party/go-pkg
