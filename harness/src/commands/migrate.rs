//! `syncbench migrate`: creates the results database or brings its
//! schema to this build's (every command does so on first use; this is
//! for a deployment step, e.g. before starting workers).

use super::{Context, outln};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(cx: &Context, _args: Args) -> anyhow::Result<u8> {
    cx.store_or_create()?;
    outln!("{} is ready", cx.db)?;
    Ok(0)
}
