package plugin

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Plugin processes batches. Process gets every signal unless the plugin also
// has ProcessTraces, ProcessLogs or ProcessMetrics (see SignalProcessors).
// Returning an error fails the batch: the plugin's on_error policy (pass,
// drop, reject) decides what weir does with it, and nothing queued applies.
type Plugin interface {
	Process(b *Batch) error
}

// SignalProcessors are the optional per-signal methods a Plugin may have; one
// that exists is called instead of Process for its signal.
type (
	TracesProcessor  interface{ ProcessTraces(b *Batch) error }
	LogsProcessor    interface{ ProcessLogs(b *Batch) error }
	MetricsProcessor interface{ ProcessMetrics(b *Batch) error }
)

// Factory makes the plugin from its config: the plugin's table from weir's
// config as JSON text ("{}" when there is none; see ParseConfig). An error
// rejects the config: weir refuses to start (or to reload) and prints it.
type Factory func(config string) (Plugin, error)

var factory Factory

// Export registers the plugin's factory. Call it from an init function of
// package main (a component has no main to run):
//
//	func init() { plugin.Export(New) }
func Export(f Factory) { factory = f }

// RunInit calls f with the config as weir would, turning a panic into an error.
func RunInit(f Factory, config string) (p Plugin, err error) {
	defer recovered("init", &err)
	if config == "" {
		config = "{}"
	}
	p, err = f(config)
	if err == nil && p == nil {
		err = fmt.Errorf("the plugin's factory returned neither a plugin nor an error")
	}
	return p, err
}

// RunBatch runs p over one batch lent by host and hands its queued changes
// over: what the component's exports do, and what plugintest.MemoryBatch
// calls. A panic in the plugin becomes the returned error.
func RunBatch(p Plugin, host Host, sequence uint64) (err error) {
	defer recovered("process", &err)
	b := &Batch{host: host, sequence: sequence}
	if err := dispatch(p, b); err != nil {
		return err
	}
	return b.flush()
}

func dispatch(p Plugin, b *Batch) error {
	switch b.Signal() {
	case Traces:
		if t, ok := p.(TracesProcessor); ok {
			return t.ProcessTraces(b)
		}
	case Logs:
		if l, ok := p.(LogsProcessor); ok {
			return l.ProcessLogs(b)
		}
	case Metrics:
		if m, ok := p.(MetricsProcessor); ok {
			return m.ProcessMetrics(b)
		}
	}
	return p.Process(b)
}

// maxStack caps the stack trace a panic's error carries (weir logs the message).
const maxStack = 4096

// recovered turns a panic into *err: "panic in process: MSG" and the stack.
func recovered(where string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	stack := string(debug.Stack())
	// Keep the plugin's frames: those between the panic and the SDK's caller.
	if i := strings.Index(stack, "panic("); i >= 0 {
		if j := strings.Index(stack[i:], "\n"); j >= 0 {
			if k := strings.Index(stack[i+j+1:], "\n"); k >= 0 {
				stack = stack[i+j+k+2:]
			}
		}
	}
	for _, caller := range []string{"\nweir.dev/plugin.dispatch(", "\nweir.dev/plugin.RunInit("} {
		if i := strings.Index(stack, caller); i >= 0 {
			stack = stack[:i]
		}
	}
	if len(stack) > maxStack {
		stack = stack[:maxStack] + "\n…"
	}
	*err = fmt.Errorf("panic in %s: %v\n%s", where, r, strings.TrimRight(stack, "\n"))
}
