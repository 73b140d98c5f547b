//! The `weir` command: run pipelines, or validate a config file.

mod allocator;
mod demo;
mod embedded;
mod plugin_new;
mod plugin_test;
mod plugins;
mod reload;
mod run;
mod topology;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weir_pipeline::config::{self, Config};

// glibc malloc cost a third of the CPU of a plugin chain (decoding OTLP into
// many small strings); mimalloc roughly halves that. See docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config `weir run` uses when no --config is given.
const QUICKSTART: &str = include_str!("../../../examples/configs/quickstart.toml");
/// The config `weir run --demo` uses when no --config is given: the quickstart
/// plus the embedded reference plugins.
const DEMO: &str = include_str!("../../../examples/configs/demo.toml");

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "An OpenTelemetry (OTLP) telemetry processor programmable with WebAssembly plugins",
    long_about = "weir receives traces, logs and metrics over OTLP (gRPC :4317, HTTP :4318), \
                  runs them through per-signal pipelines and exports them over OTLP.\n\n\
                  Logging is controlled with RUST_LOG (default: info)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the pipelines described in a TOML config file and serve until SIGTERM or Ctrl-C.
    ///
    /// Without --config, runs the embedded quickstart: OTLP receivers on
    /// 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP), everything printed to stdout,
    /// admin endpoints (/health, /ready, /metrics, /status) on 127.0.0.1:13133.
    /// With --demo and no --config, the reference plugins (embedded in the binary)
    /// run on that data too.
    Run {
        /// Config file (see examples/configs/).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also send a few demo spans, logs and metrics to weir's own gRPC receiver
        /// every second, to see data flow without an application. Without --config,
        /// the embedded reference plugins mask, sample, enrich and route them.
        #[arg(long)]
        demo: bool,
    },
    /// Plugin author tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Check a config file and print every error found, each with the key it concerns.
    /// Exits 0 if the file is valid, 1 if not.
    Validate {
        /// Config file to check.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Checks the file, then compiles and initialises its plugins (which may reject
/// their own config) and loads its certificates and token files, without
/// opening any port.
fn validate(path: &std::path::Path) -> ExitCode {
    let errors = match config::load_file(path) {
        Ok(config) => match plugins::check(&config, &weir_pipeline::Metrics::new())
            .and_then(|_| topology::check_security(&config))
        {
            Ok(_) => {
                println!("{}: configuration OK", path.display());
                return ExitCode::SUCCESS;
            }
            Err(errors) => config::ConfigErrors {
                source_name: path.display().to_string(),
                errors,
            },
        },
        Err(errors) => errors,
    };
    eprint!("{errors}");
    ExitCode::FAILURE
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write a new plugin project (weir:plugin@0.2.0, the SDK included) that
    /// builds and passes its own test as it is.
    New {
        /// Language of the project.
        #[arg(long, value_enum)]
        lang: plugin_new::Lang,
        /// Plugin name: lowercase letters, digits, '-' and '_'.
        name: String,
        /// Where to write it (default: ./NAME; must be empty or missing).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run one plugin (--wasm) or a pipeline's plugin chain (--config) over an
    /// OTLP/JSON file and print the result as OTLP/JSON, one request per route:
    /// {"default": {...}, "<route>": {...}}. With --expect, compare instead and
    /// exit 1 on a difference.
    Test {
        /// One plugin's .wasm component.
        #[arg(long, conflicts_with = "config")]
        wasm: Option<PathBuf>,
        /// That plugin's config table (TOML or JSON), as under [plugins.NAME.config].
        #[arg(long, requires = "wasm")]
        plugin_config: Option<PathBuf>,
        /// A weir config: runs the plugins of one of its pipelines.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The pipeline whose chain runs (default: the input's signal, e.g. traces).
        #[arg(long, requires = "config")]
        pipeline: Option<String>,
        /// OTLP/JSON input (an Export{Trace,Logs,Metrics}ServiceRequest).
        #[arg(long, short)]
        input: PathBuf,
        /// Expected output (same shape as printed); int64 as string or number and
        /// omitted default fields compare equal.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Where compiled plugins are cached (default: $WEIR_PLUGIN_CACHE_DIR, else
        /// $XDG_CACHE_HOME/weir/plugins, else ~/.cache/weir/plugins; created 0700).
        #[arg(long, conflicts_with = "no_cache")]
        cache_dir: Option<PathBuf>,
        /// Compile every time.
        #[arg(long)]
        no_cache: bool,
        /// Run the chain N times first and print compile, instantiate + init, and
        /// per-call times to stderr.
        #[arg(long, value_name = "N")]
        repeat: Option<u32>,
    },
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    weir_wasm::embedded::register(embedded::EMBEDDED);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Plugin(PluginCommand::New { lang, name, dir }) => match plugin_new::run(lang, &name, dir) {
            Ok(dir) => {
                println!(
                    "wrote {} ({lang:?} plugin {name}); see its README.md",
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Plugin(PluginCommand::Test {
            wasm,
            plugin_config,
            config,
            pipeline,
            input,
            expect,
            cache_dir,
            no_cache,
            repeat,
        }) => {
            let args = plugin_test::Args {
                wasm,
                plugin_config,
                config,
                pipeline,
                input,
                expect,
                cache_dir,
                no_cache,
                repeat,
            };
            match plugin_test::run(args) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config, demo } => {
            // Hashed before it is read, so a change racing start-up still reloads.
            let source = run::Source {
                hash: config.as_deref().map(reload::watch::content_hash),
                path: config.clone(),
            };
            let loaded = match &config {
                Some(path) => config::load_file(path),
                None if demo && !embedded::EMBEDDED.is_empty() => {
                    tracing::info!(
                        "demo: running the embedded demo config (examples/configs/demo.toml): \
                         the reference plugins sample, redact, enrich and route, as Wasm"
                    );
                    config::parse_str("embedded demo config", DEMO)
                }
                None => {
                    if demo {
                        tracing::warn!(
                            "demo: this weir carries no plugins (built without the wasm32-wasip2 target), \
                             so the demo runs without them; `rustup target add wasm32-wasip2` and rebuild to see them"
                        );
                    }
                    config::parse_str("embedded quickstart config", QUICKSTART)
                }
            };
            let config: Config = match loaded {
                Ok(c) => c,
                Err(errors) => {
                    eprint!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            match run::run(config, source, demo) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
