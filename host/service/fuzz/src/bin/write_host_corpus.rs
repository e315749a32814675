//! Writes the seed corpus of the `host_files` target: one well-formed file of every kind, as is
//! and with the repair flags, into the directory given (default `corpus/host_files`).

#[path = "../state.rs"]
#[allow(dead_code)]
mod state;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus/host_files".into());
    std::fs::create_dir_all(&dir)?;
    let work = std::env::temp_dir().join(format!("hetune-host-corpus-{}", std::process::id()));
    let s = state::State::new(&work);
    for (i, parts) in s.seeds.iter().enumerate() {
        for flags in [0u8, 3] {
            let input = state::encode_input(i as u8, flags, parts);
            let name = format!("{dir}/{:02}-{}-{flags}", i, state::KINDS[i].replace(' ', "_"));
            std::fs::write(name, input)?;
        }
    }
    std::fs::remove_dir_all(&work)
}
