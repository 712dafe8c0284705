pub fn run(_: BenchCommand) -> anyhow::Result<()> {
    anyhow::bail!("benchmarks not built yet")
}
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    Apdu,
}
