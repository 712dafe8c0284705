//! `keyward`: the command-line tool (secure elements, benchmarks, the demo).
#![forbid(unsafe_code)]

mod audit;
mod bench;
mod bench_pkcs11;
mod bench_produce;
mod bench_ram;
mod bench_x509;
mod ca;
mod card;
mod demo;
mod device;
mod device_apps;
mod dkek;
mod pka;
mod renewal;
mod se;
mod server;
mod token;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keyward",
    version,
    about = "Keys into IoT secure elements, and kept there"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Virtual secure elements.
    #[command(subcommand)]
    Se(se::SeCommand),
    /// Cards and elements through a transport (pcsc:READER, se:STATE-FILE).
    #[command(subcommand)]
    Card(card::CardCommand),
    /// Certification authorities.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// The device side of RAMoverHTTP.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// The back end's RAMoverHTTP server.
    Server(server::ServerArgs),
    /// Benchmarks against named peers.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The main job: an end-to-end run on embedded defaults.
    Demo(demo::DemoArgs),
    /// The back end's audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// REST API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Verify a device's signature (COSE_Sign1 or detached CMS) against a root.
    Verify(device_apps::VerifyArgs),
    /// Device Key Encryption Key shares (sc-hsm-tool compatible files).
    #[command(subcommand)]
    Dkek(dkek::DkekCommand),
    /// Key backup and restore under the DKEK.
    #[command(subcommand)]
    Key(dkek::KeyCommand),
    /// Public-key authentication: export and register custodians' keys.
    #[command(subcommand)]
    Pka(pka::PkaCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo reports its own progress; the services it runs in-process log warnings only.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Se(cmd) => se::run(cmd),
        Command::Card(cmd) => card::run(cmd),
        Command::Ca(cmd) => ca::run(cmd),
        Command::Device(cmd) => device::run(cmd),
        Command::Server(args) => server::run(&args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Dkek(cmd) => dkek::run_dkek(cmd),
        Command::Key(cmd) => dkek::run_key(cmd),
        Command::Pka(cmd) => pka::run(cmd),
        Command::Verify(a) => device_apps::verify(&a).map(|path| {
            println!("signature verified: {}", path.join(" <- "));
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyward: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
